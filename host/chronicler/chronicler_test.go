package chronicler

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
)

func ev(p string, pseq uint64) wire.Event {
	return wire.Event{Producer: p, PSeq: pseq, Type: "t", Payload: []byte(fmt.Sprintf(`{"n":%d}`, pseq))}
}

func mustNew(t *testing.T, l eventlog.Log) *Chronicler {
	t.Helper()
	c, err := New(context.Background(), l, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDedupeAndGaps(t *testing.T) {
	ctx := context.Background()
	c := mustNew(t, memlog.New())
	a1, err := c.Publish(ctx, ev("a", 1))
	if err != nil || a1.Seq != 1 || a1.Duplicate {
		t.Fatalf("first publish: %+v %v", a1, err)
	}
	b1, _ := c.Publish(ctx, ev("b", 1))
	a2, _ := c.Publish(ctx, ev("a", 2))
	if b1.Seq != 2 || a2.Seq != 3 {
		t.Fatalf("seqs %d %d", b1.Seq, a2.Seq)
	}
	// Re-sends of any earlier pseq get the original seq back.
	for pseq, want := range map[uint64]uint64{1: 1, 2: 3} {
		d, err := c.Publish(ctx, ev("a", pseq))
		if err != nil || !d.Duplicate || d.Seq != want {
			t.Fatalf("re-send pseq %d: %+v %v, want seq %d duplicate", pseq, d, err, want)
		}
	}
	// A gap is refused naming the expected pseq, and nothing is written.
	_, err = c.Publish(ctx, ev("a", 5))
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodePSeqGap || we.ExpectedPSeq != 3 {
		t.Fatalf("gap: %v", err)
	}
	if c.Head() != 3 {
		t.Fatalf("head %d after a refused gap", c.Head())
	}
	// A new producer must start at 1.
	if _, err := c.Publish(ctx, ev("new", 2)); !errors.As(err, &we) || we.ExpectedPSeq != 1 {
		t.Fatalf("new producer at pseq 2: %v", err)
	}
}

func TestDedupeSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	l := memlog.New()
	c, err := New(ctx, l, Config{})
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{}
	for i := uint64(1); i <= 50; i++ {
		p := fmt.Sprintf("p%d", i%3)
		next[p]++
		if _, err := c.Publish(ctx, ev(p, next[p])); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	c2 := mustNew(t, l)
	d, err := c2.Publish(ctx, ev("p1", 1))
	if err != nil || !d.Duplicate || d.Seq != 1 {
		t.Fatalf("after restart: %+v %v", d, err)
	}
	last, lastSeq, ok := c2.ProducerInfo("p2")
	if !ok || last != 17 || lastSeq != 50 {
		t.Fatalf("producer info %d %d %v", last, lastSeq, ok)
	}
	n, err := c2.Publish(ctx, ev("p2", 18))
	if err != nil || n.Seq != 51 {
		t.Fatalf("continue: %+v %v", n, err)
	}
}

// countingLog counts appends, to show that concurrent producers share them.
type countingLog struct {
	eventlog.Log
	appends atomic.Int64
	fail    atomic.Bool
	delay   time.Duration // stands in for the time an fsync takes
}

func (c *countingLog) Append(ctx context.Context, recs []eventlog.Record) error {
	c.appends.Add(1)
	time.Sleep(c.delay)
	if c.fail.Load() {
		return fmt.Errorf("injected: %w", eventlog.ErrFailed)
	}
	return c.Log.Append(ctx, recs)
}

func TestGroupCommitSharesAppends(t *testing.T) {
	l := &countingLog{Log: memlog.New(), delay: time.Millisecond}
	c := mustNew(t, l)
	const producers, each = 64, 50
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i <= each; i++ {
				if _, err := c.Publish(context.Background(), ev(fmt.Sprint("p", p), i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c.Head() != producers*each {
		t.Fatalf("head %d", c.Head())
	}
	if n := l.appends.Load(); n >= producers*each/2 {
		t.Fatalf("%d appends for %d events: producers are not sharing commits", n, producers*each)
	}
	t.Logf("%d events in %d appends", producers*each, l.appends.Load())
}

func TestStorageFailureStopsAcking(t *testing.T) {
	ctx := context.Background()
	l := &countingLog{Log: memlog.New()}
	c := mustNew(t, l)
	if _, err := c.Publish(ctx, ev("a", 1)); err != nil {
		t.Fatal(err)
	}
	l.fail.Store(true)
	_, err := c.Publish(ctx, ev("a", 2))
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("publish during failure: %v", err)
	}
	if c.Failed() == nil {
		t.Fatal("Failed() is nil after a storage error")
	}
	// Even when storage would work again, nothing is acked until restart;
	// duplicates of durable events are not acked either.
	l.fail.Store(false)
	for _, e := range []wire.Event{ev("a", 2), ev("a", 1), ev("b", 1)} {
		if _, err := c.Publish(ctx, e); !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
			t.Fatalf("publish %+v after failure: %v", e, err)
		}
	}
	if l.LastSeq() != 1 {
		t.Fatalf("log has %d records", l.LastSeq())
	}
}

func TestCloseFinishesQueued(t *testing.T) {
	c, err := New(context.Background(), memlog.New(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := uint64(1); i <= 1000; i++ {
		wg.Add(1)
		c.Submit(context.Background(), &Request{Event: ev("a", i), Done: func(_ *Request, r Result) {
			if r.Err == nil {
				got.Add(1)
			}
			wg.Done()
		}})
	}
	c.Close()
	wg.Wait()
	if got.Load() != 1000 {
		t.Fatalf("%d of 1000 queued publishes acked across Close", got.Load())
	}
	// After Close every publish is refused as unavailable.
	_, err = c.Publish(context.Background(), ev("a", 1001))
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("after close: %v", err)
	}
}

func BenchmarkChroniclerMemlog(b *testing.B) {
	c, _ := New(context.Background(), memlog.New(), Config{})
	defer c.Close()
	payload := []byte(`{"id":"abcdefgh","text":"` + string(make([]byte, 0)) + `buy some milk and some bread and eggs please"}`)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		c.Submit(context.Background(), &Request{Event: wire.Event{Producer: "p", PSeq: uint64(i + 1), Type: "todo/add", Payload: payload},
			Done: func(*Request, Result) { wg.Done() }})
	}
	wg.Wait()
}

// gateLog holds each Append until release is closed, as a slow fsync does,
// and then fails it if fail is set.
type gateLog struct {
	eventlog.Log
	entered chan struct{}
	release chan struct{}
	fail    bool
}

func (g *gateLog) Append(ctx context.Context, recs []eventlog.Record) error {
	g.entered <- struct{}{}
	<-g.release
	if g.fail {
		return fmt.Errorf("injected: %w", eventlog.ErrFailed)
	}
	return g.Log.Append(ctx, recs)
}

// TestProducerInfoReportsOnlyDurableEvents: GET /v1/producers/{id} (which
// ProducerInfo answers) must not report as accepted an event whose batch is
// still being written, nor one whose write failed: a client resuming its
// producer would skip re-sending an event that is then lost.
func TestProducerInfoReportsOnlyDurableEvents(t *testing.T) {
	ctx := context.Background()
	for _, fail := range []bool{false, true} {
		ml := memlog.New()
		if err := ml.Append(ctx, []eventlog.Record{{Seq: 1, Producer: "a", PSeq: 1, Type: "t", Payload: []byte("1")}}); err != nil {
			t.Fatal(err)
		}
		g := &gateLog{Log: ml, entered: make(chan struct{}), release: make(chan struct{}), fail: fail}
		c := mustNew(t, g)
		done := make(chan error, 1)
		go func() { _, err := c.Publish(ctx, ev("a", 2)); done <- err }()
		<-g.entered // pseq 2 is being written, not yet durable
		last, seq, ok := c.ProducerInfo("a")
		close(g.release)
		if !ok || last != 1 || seq != 1 {
			t.Fatalf("fail=%v: during the write of pseq 2: last pseq %d seq %d known %v, want 1 1 true", fail, last, seq, ok)
		}
		err := <-done
		last, seq, ok = c.ProducerInfo("a")
		switch {
		case fail && (err == nil || last != 1 || seq != 1 || !ok):
			t.Fatalf("after a failed write of pseq 2 (publish error %v): last pseq %d seq %d known %v, want 1 1 true", err, last, seq, ok)
		case !fail && (err != nil || last != 2 || seq != 2 || !ok):
			t.Fatalf("after pseq 2 is durable (publish error %v): last pseq %d seq %d known %v, want 2 2 true", err, last, seq, ok)
		}
	}
}

// TestTooLargeEventRefusedAlone: an event over Config.MaxRecordSize is
// refused with too_large, takes no seq, and the host goes on acking.
func TestTooLargeEventRefusedAlone(t *testing.T) {
	ctx := context.Background()
	c, err := New(ctx, memlog.New(), Config{MaxRecordSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := ev("a", 1)
	big.Payload = []byte(`"` + string(make([]byte, 100)) + `"`)
	var we *wire.Error
	if _, err := c.Publish(ctx, big); !errors.As(err, &we) || we.Code != wire.CodeTooLarge {
		t.Fatalf("publish of a too large event: %v, want too_large", err)
	}
	if a, err := c.Publish(ctx, ev("a", 1)); err != nil || a.Seq != 1 || a.Duplicate {
		t.Fatalf("publish after it: %+v %v, want seq 1", a, err)
	}
	if c.Failed() != nil || c.Head() != 1 {
		t.Fatalf("failed %v, head %d", c.Failed(), c.Head())
	}
}

// TestRefusedPublishesKeepNoMemory: a publish refused for a pseq gap (or as
// too large) writes nothing, so it must not leave anything behind either: a
// client sending pseq 2 under ever new producer ids must not grow the
// host's memory without bound.
func TestRefusedPublishesKeepNoMemory(t *testing.T) {
	c, err := New(context.Background(), memlog.New(), Config{MaxRecordSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 50000
	pad := strings.Repeat("x", 200)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range n {
		e := ev(fmt.Sprintf("%s-%d", pad, i), 2)
		if i%2 == 1 {
			e.PSeq, e.Payload = 1, []byte(`"`+strings.Repeat("y", 1000)+`"`)
		}
		wg.Add(1)
		c.Submit(context.Background(), &Request{Event: e, Done: func(_ *Request, r Result) {
			if r.Err != nil && (r.Err.Code == wire.CodePSeqGap || r.Err.Code == wire.CodeTooLarge) {
				refused.Add(1)
			}
			wg.Done()
		}})
	}
	wg.Wait()
	if refused.Load() != n {
		t.Fatalf("%d of %d publishes refused", refused.Load(), n)
	}
	if grown := int64(heap()) - int64(before); grown > 4<<20 {
		t.Fatalf("heap grew by %d bytes after %d refused publishes", grown, n)
	}
}
