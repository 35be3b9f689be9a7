package chronicler

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

// TestRebuiltAtOpenEqualsReadingTheLog: the dedupe table built from the
// file log's open scan (filelog OnRecord → Rebuilder) equals the one New
// builds by reading the log, and a restart with it acks re-sends with their
// original seqs. A Rebuilder that does not match the log is not used.
func TestRebuiltAtOpenEqualsReadingTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := filelog.Open(filelog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, l, Config{})
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{}
	for i := range 300 {
		p := []string{"a", "bb", "ccc", "a"}[i%4]
		next[p]++
		if _, err := c.Publish(ctx, ev(p, next[p])); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	l.Close()

	// open opens the log (one at a time: it is locked) and a chronicler
	// on it, and returns what to compare and a func closing both.
	open := func(rb *Rebuilder) (*Chronicler, func()) {
		t.Helper()
		cfg := filelog.Config{Dir: dir}
		if rb != nil {
			cfg.OnRecord = func(seq, pseq uint64, producer []byte, time int64) error {
				rb.Add(seq, pseq, producer, time)
				return nil
			}
		}
		l, err := filelog.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(ctx, l, Config{Rebuilt: rb})
		if err != nil {
			t.Fatal(err)
		}
		return c, func() { c.Close(); l.Close() }
	}
	slow, done := open(nil)
	done()
	rb := NewRebuilder()
	fast, done := open(rb)
	if rb.next != 301 || rb.err != nil {
		t.Fatalf("the Rebuilder saw up to seq %d (%v), want 300", rb.next-1, rb.err)
	}
	if fast.lastTime != slow.lastTime || fast.nextSeq != slow.nextSeq ||
		!maps.EqualFunc(fast.producers, slow.producers, func(a, b *producer) bool { return slices.Equal(a.seqs, b.seqs) }) {
		t.Fatalf("tables differ: built at open %d producers next %d, read %d producers next %d", len(fast.producers), fast.nextSeq, len(slow.producers), slow.nextSeq)
	}
	d, err := fast.Publish(ctx, ev("bb", 10))
	if err != nil || !d.Duplicate || d.Seq != 38 { // bb has seqs 2, 6, 10, ...: its pseq 10 is seq 38
		t.Fatalf("re-send after a restart with the table built at open: %+v %v", d, err)
	}
	n, err := fast.Publish(ctx, ev("bb", next["bb"]+1))
	if err != nil || n.Duplicate || n.Seq != 301 {
		t.Fatalf("new event: %+v %v", n, err)
	}
	done()

	// A Rebuilder that does not end at the log's head is not trusted.
	wrong := NewRebuilder()
	wrong.Add(1, 1, []byte("a"), 0)
	l4, err := filelog.Open(filelog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	c4, err := New(ctx, l4, Config{Rebuilt: wrong})
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	if c4.nextSeq != 302 || len(c4.producers) != 3 || c4.producers["bb"].last() != next["bb"]+1 {
		t.Fatalf("a mismatched Rebuilder was used: next %d, %d producers", c4.nextSeq, len(c4.producers))
	}
}
