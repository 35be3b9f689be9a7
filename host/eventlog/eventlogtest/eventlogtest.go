// Package eventlogtest is the conformance suite for eventlog.Log
// implementations. Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		eventlogtest.Run(t, func(t *testing.T) eventlog.Log { return memlog.New() })
//	}
//
// Backends that persist across Close call RunDurable instead, which runs Run
// and then checks that a reopened log holds exactly what was acknowledged.
package eventlogtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog"
)

// Records returns n deterministic test records with sequences first,
// first+1, ... and a zero Hash. The same (first, n) always gives the same
// records, so a test can rebuild what it expects to read back.
func Records(first uint64, n int) []eventlog.Record {
	recs := make([]eventlog.Record, n)
	for i := range recs {
		seq := first + uint64(i)
		recs[i] = eventlog.Record{
			Seq:      seq,
			Producer: fmt.Sprintf("producer-%d", seq%3),
			PSeq:     seq/3 + 1,
			Time:     1_700_000_000_000_000_000 + int64(seq)*1000,
			Type:     "test/event",
			Payload:  fmt.Appendf(nil, `{"seq":%d,"pad":%q}`, seq, strings.Repeat("x", int(seq%40))),
		}
	}
	return recs
}

// Chain fills in the Hash of each record in recs, starting from prev, the
// Hash of the record before recs[0], and returns the last Hash.
func Chain(prev eventlog.Hash, recs []eventlog.Record) eventlog.Hash {
	for i := range recs {
		recs[i].Hash = eventlog.ChainHash(prev, &recs[i])
		prev = recs[i].Hash
	}
	return prev
}

// Run runs the conformance suite. open must return a new, empty log for each
// call; Run closes it at the end of each subtest.
func Run(t *testing.T, open func(t *testing.T) eventlog.Log) {
	t.Helper()
	fresh := func(t *testing.T) eventlog.Log {
		l := open(t)
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	t.Run("Empty", func(t *testing.T) { testEmpty(t, fresh(t)) })
	t.Run("AppendRead", func(t *testing.T) { testAppendRead(t, fresh(t)) })
	t.Run("OutOfOrder", func(t *testing.T) { testOutOfOrder(t, fresh(t)) })
	t.Run("ReadEdges", func(t *testing.T) { testReadEdges(t, fresh(t)) })
	t.Run("NoAliasing", func(t *testing.T) { testNoAliasing(t, fresh(t)) })
	t.Run("Wait", func(t *testing.T) { testWait(t, fresh(t)) })
	t.Run("ConcurrentReaders", func(t *testing.T) { testConcurrentReaders(t, fresh(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, fresh(t)) })
	t.Run("LargePayloads", func(t *testing.T) { testLarge(t, fresh(t)) })
	t.Run("Many", func(t *testing.T) { testMany(t, fresh(t)) })
}

// RunDurable runs Run and then the persistence checks: records, FirstSeq,
// LastSeq and LastHash survive Close and reopen, and appends after a reopen
// continue the hash chain. open must open (creating if needed) the log stored
// in dir; each call with a new dir must give an empty log.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) eventlog.Log) {
	t.Helper()
	Run(t, func(t *testing.T) eventlog.Log { return open(t, t.TempDir()) })
	t.Run("ReopenEmpty", func(t *testing.T) { testReopenEmpty(t, open) })
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ReopenMany", func(t *testing.T) { testReopenMany(t, open) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Equal reports the first difference between got and want, or nil. A nil
// and an empty Payload are equal.
func Equal(got, want []eventlog.Record) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Seq != w.Seq || g.Producer != w.Producer || g.PSeq != w.PSeq || g.Time != w.Time ||
			g.Type != w.Type || !bytes.Equal(g.Payload, w.Payload) || g.Hash != w.Hash {
			return fmt.Errorf("record %d differs:\n got %s\nwant %s", i, describe(g), describe(w))
		}
	}
	return nil
}

func describe(r *eventlog.Record) string {
	p := r.Payload
	if len(p) > 64 {
		p = p[:64]
	}
	return fmt.Sprintf("{seq %d producer %q pseq %d time %d type %q payload(%d) %q hash %x}",
		r.Seq, r.Producer, r.PSeq, r.Time, r.Type, len(r.Payload), p, r.Hash[:6])
}

func mustAppend(t *testing.T, l eventlog.Log, recs []eventlog.Record) {
	t.Helper()
	if err := l.Append(ctx(t), recs); err != nil {
		t.Fatalf("Append seq %d..%d: %v", recs[0].Seq, recs[len(recs)-1].Seq, err)
	}
}

// appendAll appends want in batches of the given sizes (cycled), so every
// test exercises batches of different lengths.
func appendAll(t *testing.T, l eventlog.Log, want []eventlog.Record, sizes ...int) {
	t.Helper()
	if len(sizes) == 0 {
		sizes = []int{1, 3, 7, 2}
	}
	for i, k := 0, 0; i < len(want); k++ {
		n := min(sizes[k%len(sizes)], len(want)-i)
		batch := append([]eventlog.Record(nil), want[i:i+n]...)
		mustAppend(t, l, batch)
		i += n
	}
}

func readAll(t *testing.T, l eventlog.Log, from uint64) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for {
		got, err := l.Read(ctx(t), from, 1000, nil)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		out = append(out, got...)
		if len(got) < 1000 {
			return out
		}
		from += uint64(len(got))
	}
}

func checkState(t *testing.T, l eventlog.Log, want []eventlog.Record) {
	t.Helper()
	var first, last uint64
	var hash eventlog.Hash
	if len(want) > 0 {
		first, last, hash = want[0].Seq, want[len(want)-1].Seq, want[len(want)-1].Hash
	}
	if got := l.FirstSeq(); got != first {
		t.Errorf("FirstSeq = %d, want %d", got, first)
	}
	if got := l.LastSeq(); got != last {
		t.Errorf("LastSeq = %d, want %d", got, last)
	}
	if got := l.LastHash(); got != hash {
		t.Errorf("LastHash = %x, want %x", got, hash)
	}
	if len(want) == 0 {
		return
	}
	if err := Equal(readAll(t, l, first), want); err != nil {
		t.Fatalf("Read(%d..): %v", first, err)
	}
}

func testEmpty(t *testing.T, l eventlog.Log) {
	checkState(t, l, nil)
	got, err := l.Read(ctx(t), 1, 10, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Read(1) on empty log = %d records, %v; want 0, nil", len(got), err)
	}
	if err := l.Append(ctx(t), nil); err != nil {
		t.Fatalf("Append(empty batch) = %v", err)
	}
	checkState(t, l, nil)
	c, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if seq, err := l.Wait(c, 0); !errors.Is(err, context.DeadlineExceeded) || seq != 0 {
		t.Fatalf("Wait on empty log = %d, %v; want 0, deadline exceeded", seq, err)
	}
}

func testAppendRead(t *testing.T, l eventlog.Log) {
	want := Records(1, 10)
	Chain(eventlog.Hash{}, want)

	in := Records(1, 10)
	in[0].Hash = eventlog.Hash{1, 2, 3} // garbage: the log must overwrite it
	for _, b := range [][2]int{{0, 3}, {3, 4}, {4, 10}} {
		mustAppend(t, l, in[b[0]:b[1]])
		if got := l.LastSeq(); got != uint64(b[1]) {
			t.Fatalf("LastSeq after appending ..%d = %d", b[1], got)
		}
	}
	if err := Equal(in, want); err != nil {
		t.Fatalf("Append did not fill in the chain hashes: %v", err)
	}
	checkState(t, l, want)
}

func testOutOfOrder(t *testing.T, l eventlog.Log) {
	bad := func(what string, recs []eventlog.Record) {
		t.Helper()
		if err := l.Append(ctx(t), recs); !errors.Is(err, eventlog.ErrOutOfOrder) {
			t.Fatalf("Append(%s) = %v, want ErrOutOfOrder", what, err)
		}
	}
	bad("seq 2 on empty log", Records(2, 1))
	bad("seq 0", Records(0, 2))
	gap := Records(1, 3)
	gap[2].Seq = 4
	bad("gap inside batch", gap)
	dup := Records(1, 2)
	dup[1].Seq = 1
	bad("repeat inside batch", dup)
	checkState(t, l, nil)

	want := Records(1, 3)
	Chain(eventlog.Hash{}, want)
	mustAppend(t, l, Records(1, 2))
	bad("seq already held", Records(2, 1))
	bad("seq past the end", Records(4, 1))
	bad("batch starting at 1 again", Records(1, 3))
	mustAppend(t, l, Records(3, 1)) // the log is still usable
	checkState(t, l, want)
}

func testReadEdges(t *testing.T, l eventlog.Log) {
	want := Records(1, 20)
	Chain(eventlog.Hash{}, want)
	appendAll(t, l, want)
	c := ctx(t)

	if _, err := l.Read(c, 0, 5, nil); !errors.Is(err, eventlog.ErrNotFound) {
		t.Errorf("Read(0) = %v, want ErrNotFound", err)
	}
	for _, from := range []uint64{21, 22, 1000, eventlog.MaxSeq} {
		if got, err := l.Read(c, from, 5, nil); err != nil || len(got) != 0 {
			t.Errorf("Read(%d) past the end = %d records, %v; want 0, nil", from, len(got), err)
		}
	}
	if got, err := l.Read(c, 1, 0, nil); err != nil || len(got) != 0 {
		t.Errorf("Read(1, max 0) = %d records, %v; want 0, nil", len(got), err)
	}
	cases := []struct {
		from uint64
		max  int
	}{{20, 5}, {5, 3}, {1, 1}, {1, 20}, {1, 21}, {19, 100}, {7, 13}}
	for _, tc := range cases {
		got, err := l.Read(c, tc.from, tc.max, nil)
		if err != nil {
			t.Fatalf("Read(%d, %d): %v", tc.from, tc.max, err)
		}
		end := min(int(tc.from)-1+tc.max, 20)
		if err := Equal(got, want[tc.from-1:end]); err != nil {
			t.Errorf("Read(%d, %d): %v", tc.from, tc.max, err)
		}
	}

	// buf is reused: results are appended to buf[:0].
	buf := make([]eventlog.Record, 7, 32)
	for i := range buf {
		buf[i] = eventlog.Record{Seq: 999, Type: "junk", Payload: []byte("junk")}
	}
	got, err := l.Read(c, 3, 10, buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := Equal(got, want[2:12]); err != nil {
		t.Fatalf("Read into reused buf: %v", err)
	}
	if &got[0] != &buf[0] {
		t.Errorf("Read did not reuse buf although cap(buf) = %d suffices", cap(buf))
	}
	// A buf too small is grown.
	got, err = l.Read(c, 1, 20, make([]eventlog.Record, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := Equal(got, want); err != nil {
		t.Fatalf("Read into small buf: %v", err)
	}
}

func testNoAliasing(t *testing.T, l eventlog.Log) {
	in := Records(1, 10)
	want := Records(1, 10)
	Chain(eventlog.Hash{}, want)
	mustAppend(t, l, in)
	for i := range in { // the caller reuses its buffers after Append
		clear(in[i].Payload)
	}
	c := ctx(t)
	first, err := l.Read(c, 1, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	keep := append([]eventlog.Record(nil), first...)
	for i := range first { // the caller scribbles over what it read
		clear(first[i].Payload)
		first[i].Producer = "scribbled"
	}
	// Other reads, into other buffers, do not change what was returned before.
	var buf []eventlog.Record
	for from := uint64(1); from <= 10; from++ {
		if buf, err = l.Read(c, from, 3, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := Equal(readAll(t, l, 1), want); err != nil {
		t.Fatalf("log changed after caller modified records: %v", err)
	}
	second, err := l.Read(c, 1, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keep {
		if &keep[i].Payload[0] == &second[i].Payload[0] {
			t.Fatalf("two reads of seq %d return the same payload memory", keep[i].Seq)
		}
	}
}

func testWait(t *testing.T, l eventlog.Log) {
	c := ctx(t)
	mustAppend(t, l, Records(1, 1))
	if seq, err := l.Wait(c, 0); err != nil || seq != 1 {
		t.Fatalf("Wait(0) with seq 1 held = %d, %v; want 1, nil", seq, err)
	}

	// Wakes on append.
	done := make(chan error, 1)
	go func() {
		time.Sleep(20 * time.Millisecond)
		done <- l.Append(c, Records(2, 2))
	}()
	seq, err := l.Wait(c, 1)
	if err != nil || seq < 2 {
		t.Fatalf("Wait(1) = %d, %v; want >= 2, nil", seq, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Honours its context, whether it ends before or during the wait.
	cc, cancel := context.WithCancel(c)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if seq, err := l.Wait(cc, 3); !errors.Is(err, context.Canceled) || seq != 3 {
		t.Fatalf("Wait(3) with canceled context = %d, %v; want 3, context.Canceled", seq, err)
	}
	if _, err := l.Wait(cc, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(3) with a context canceled already = %v, want context.Canceled", err)
	}

	// Many waiters all wake for one append.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if seq, err := l.Wait(c, 3); err != nil || seq < 4 {
				errs <- fmt.Errorf("Wait(3) = %d, %v", seq, err)
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
	mustAppend(t, l, Records(4, 1))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testConcurrentReaders(t *testing.T, l eventlog.Log) {
	const n = 3000
	want := Records(1, n)
	Chain(eventlog.Hash{}, want)
	c := ctx(t)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for r := range 4 {
		wg.Go(func() {
			var buf []eventlog.Record
			next := uint64(1)
			for next <= n {
				if _, err := l.Wait(c, next-1); err != nil {
					errs <- fmt.Errorf("reader %d: Wait(%d): %w", r, next-1, err)
					return
				}
				var err error
				buf, err = l.Read(c, next, 17+r*31, buf)
				if err != nil {
					errs <- fmt.Errorf("reader %d: Read(%d): %w", r, next, err)
					return
				}
				if len(buf) == 0 {
					errs <- fmt.Errorf("reader %d: Read(%d) returned nothing after Wait said it is there", r, next)
					return
				}
				if err := Equal(buf, want[next-1:next-1+uint64(len(buf))]); err != nil {
					errs <- fmt.Errorf("reader %d: Read(%d): %w", r, next, err)
					return
				}
				next += uint64(len(buf))
			}
		})
	}
	wg.Go(func() { // LastSeq and LastHash move forward together
		var prev uint64
		for {
			seq := l.LastSeq()
			h := l.LastHash()
			if seq < prev {
				errs <- fmt.Errorf("LastSeq went back from %d to %d", prev, seq)
				return
			}
			if seq > 0 && l.LastSeq() == seq && h != want[seq-1].Hash {
				errs <- fmt.Errorf("LastHash %x does not match LastSeq %d", h[:6], seq)
				return
			}
			prev = seq
			if seq == n {
				return
			}
			if _, err := l.Wait(c, seq); err != nil {
				errs <- err
				return
			}
		}
	})
	for i, k := 0, 0; i < n; k++ {
		m := min(1+k*7%50, n-i)
		if err := l.Append(c, append([]eventlog.Record(nil), want[i:i+m]...)); err != nil {
			t.Errorf("Append: %v", err)
			break
		}
		i += m
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testClosed(t *testing.T, l eventlog.Log) {
	c := ctx(t)
	mustAppend(t, l, Records(1, 3))
	waited := make(chan error, 1)
	go func() {
		_, err := l.Wait(c, 3)
		waited <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case err := <-waited:
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("Wait blocked across Close returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Close")
	}
	if err := l.Append(c, Records(4, 1)); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Read(c, 1, 1, nil); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Wait(c, 0); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Wait after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

func testLarge(t *testing.T, l eventlog.Log) {
	big := func(n int, c byte) []byte {
		p := bytes.Repeat([]byte{c}, n)
		p[0], p[n-1] = '"', '"'
		return p
	}
	want := Records(1, 5)
	want[1].Payload = big(1<<20, 'a')
	want[3].Payload = big(300<<10, 'b')
	want[2].Producer = strings.Repeat("p", 1000)
	want[2].Type = strings.Repeat("t", 1000)
	want[4].Payload = nil
	in := make([]eventlog.Record, len(want))
	copy(in, want)
	Chain(eventlog.Hash{}, want)
	mustAppend(t, l, in[:2])
	mustAppend(t, l, in[2:])
	checkState(t, l, want)
	got, err := l.Read(ctx(t), 2, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Equal(got, want[1:2]); err != nil {
		t.Fatal(err)
	}
}

func testMany(t *testing.T, l eventlog.Log) {
	want := Records(1, 3000)
	Chain(eventlog.Hash{}, want)
	appendAll(t, l, want, 100, 1, 256, 33)
	var got, buf []eventlog.Record
	for from := uint64(1); ; {
		var err error
		buf, err = l.Read(ctx(t), from, 333, buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf...)
		if len(buf) < 333 {
			break
		}
		from += 333
	}
	if err := Equal(got, want); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, want)
}

func reopen(t *testing.T, open func(t *testing.T, dir string) eventlog.Log, dir string) eventlog.Log {
	t.Helper()
	l := open(t, dir)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func mustClose(t *testing.T, l eventlog.Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testReopenEmpty(t *testing.T, open func(t *testing.T, dir string) eventlog.Log) {
	dir := t.TempDir()
	mustClose(t, reopen(t, open, dir))
	l := reopen(t, open, dir)
	checkState(t, l, nil)
	want := Records(1, 1)
	Chain(eventlog.Hash{}, want)
	mustAppend(t, l, Records(1, 1))
	mustClose(t, l)
	checkState(t, reopen(t, open, dir), want)
}

func testReopen(t *testing.T, open func(t *testing.T, dir string) eventlog.Log) {
	dir := t.TempDir()
	want := Records(1, 60)
	Chain(eventlog.Hash{}, want)

	l := reopen(t, open, dir)
	appendAll(t, l, want[:50])
	checkState(t, l, want[:50])
	mustClose(t, l)

	l = reopen(t, open, dir)
	checkState(t, l, want[:50])
	in := Records(51, 10)
	mustAppend(t, l, in) // must chain onto the hash of seq 50 found on disk
	if err := Equal(in, want[50:]); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
	mustClose(t, l)

	checkState(t, reopen(t, open, dir), want)
}

func testReopenMany(t *testing.T, open func(t *testing.T, dir string) eventlog.Log) {
	dir := t.TempDir()
	want := Records(1, 7*6)
	Chain(eventlog.Hash{}, want)
	for i := range 6 {
		l := reopen(t, open, dir)
		checkState(t, l, want[:i*7])
		appendAll(t, l, want[i*7:(i+1)*7], 2, 5)
		mustClose(t, l)
	}
	checkState(t, reopen(t, open, dir), want)
}
