package cascade

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
)

// fakeInput is an input whose history the test writes: states[seq].
type fakeInput struct {
	name   string
	mu     sync.Mutex
	states map[uint64]statetree.Value
	push   chan func(PushFunc)
	fails  int // StateAt calls still to fail, as an unreachable upstream's
}

func (f *fakeInput) Name() string   { return f.name }
func (f *fakeInput) Source() string { return "local" }
func (f *fakeInput) Follow(ctx context.Context, push PushFunc) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case fn := <-f.push:
			fn(push)
		}
	}
}
func (f *fakeInput) StateAt(_ context.Context, seq uint64) (statetree.Value, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return statetree.Value{}, errors.New("upstream unreachable")
	}
	best, at := statetree.EmptyMap(), uint64(0)
	for s, v := range f.states {
		if s <= seq && s >= at {
			best, at = v, s
		}
	}
	return best, nil
}

// runTwoInputFeed runs a Feed with retention retain over two fake inputs
// "a" and "b" until ctx ends.
func runTwoInputFeed(ctx context.Context, retain int) (a, b *fakeInput, f *Feed) {
	a = &fakeInput{name: "a", states: map[uint64]statetree.Value{}, push: make(chan func(PushFunc))}
	b = &fakeInput{name: "b", states: map[uint64]statetree.Value{}, push: make(chan func(PushFunc))}
	f = NewFeed([]Input{a, b}, retain)
	go f.Run(ctx)
	return a, b, f
}

// set records input's state at seq (changing key k to v) and pushes it.
func (f *fakeInput) set(seq uint64, root statetree.Value, ops []statetree.Op) {
	f.mu.Lock()
	f.states[seq] = root
	f.mu.Unlock()
	done := make(chan struct{})
	f.push <- func(p PushFunc) { p(seq, ops, root, false); close(done) }
	<-done
}

// TestFeedMergesAndCatchesUp: two inputs changing at random seqs, read by
// consumers starting at every kind of position with a tiny retention:
// applying the ops of the records read, input by input, always reproduces
// the inputs' states, and the feed keeps a bounded number of frames.
func TestFeedMergesAndCatchesUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b, f := runTwoInputFeed(ctx, 8)
	roots := []statetree.Value{statetree.EmptyMap(), statetree.EmptyMap()}
	a.states[0], b.states[0] = roots[0], roots[1]
	// The pushes run on the inputs' goroutines after the sends return: they
	// get the start roots by value, as the loop below replaces roots[i].
	ra, rb := roots[0], roots[1]
	a.push <- func(p PushFunc) { p(0, nil, ra, true) }
	b.push <- func(p PushFunc) { p(0, nil, rb, true) }
	r := rand.New(rand.NewPCG(1, 1))
	const last = 600
	for seq := uint64(1); seq <= last; seq++ {
		for i, in := range []*fakeInput{a, b} {
			var ops []statetree.Op
			if r.IntN(3) == 0 {
				nr, o, err := roots[i].Set(statetree.Path{fmt.Sprint("k", r.IntN(20))}, statetree.Int(int64(seq)))
				if err != nil {
					t.Fatal(err)
				}
				roots[i], ops = nr, o
			}
			in.set(seq, roots[i], ops)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := f.Wait(wctx, last-1); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	nframes, nhandles := len(f.frames), len(f.handles)
	f.mu.Unlock()
	if nframes > 16 || nhandles > 16+16+64 {
		t.Fatalf("the feed holds %d frames and %d handles with retention 8", nframes, nhandles)
	}
	for _, from := range []uint64{1, 2, 300, last - 20, last - 3, last} {
		// The consumer's state at from-1, input by input.
		have := make([]statetree.Value, 2)
		for i, in := range []*fakeInput{a, b} {
			have[i], _ = in.StateAt(ctx, from-1)
		}
		pos := from - 1
		var buf []eventlog.Record
		for pos < last {
			var err error
			buf, err = f.Read(ctx, pos+1, 3, buf)
			if err != nil {
				t.Fatal(err)
			}
			if len(buf) == 0 {
				t.Fatalf("from %d: nothing to read at %d", from, pos+1)
			}
			for _, rec := range buf {
				if rec.Seq <= pos {
					t.Fatalf("from %d: record %d at or below position %d", from, rec.Seq, pos)
				}
				if rec.Type == "nodb/patch" {
					fr, err := f.frameOf(&rec)
					if err != nil {
						t.Fatal(err)
					}
					for i := range have {
						if fr.ops[i] != nil {
							if have[i], err = statetree.Apply(have[i], fr.ops[i]); err != nil {
								t.Fatalf("from %d: ops at %d do not apply: %v", from, rec.Seq, err)
							}
						}
						if have[i].Hash() != fr.roots[i].Hash() {
							t.Fatalf("from %d: input %d after the record at %d differs from the frame's state", from, i, rec.Seq)
						}
					}
				}
				pos = rec.Seq
			}
		}
		for i, in := range []*fakeInput{a, b} {
			want, _ := in.StateAt(ctx, last)
			if have[i].Hash() != want.Hash() {
				t.Fatalf("from %d: input %d ends at %s, want %s", from, i, have[i].AppendJSON(nil), want.AppendJSON(nil))
			}
		}
	}
}

// copyReducer keeps its one input's state at /in, frame by frame, as a
// cascade's Reducer reads frames; hold, while locked, stops it in Reduce.
type copyReducer struct {
	f    *Feed
	hold *sync.Mutex
}

func (copyReducer) Consumes(t string) bool { return true }
func (copyReducer) Hash() string           { return "test-copy" }
func (copyReducer) Close() error           { return nil }
func (r copyReducer) Reduce(_ context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	r.hold.Lock()
	r.hold.Unlock()
	if rec.Type != "nodb/patch" {
		return nil
	}
	fr, err := r.f.frameOf(rec)
	if err != nil {
		return err
	}
	return tx.Set(statetree.Path{"in"}, fr.roots[0])
}

// TestCatchUpSurvivesAnInputThatFailsOnce: a cascade view that fell behind
// what its feed retains catches up from its input's past state; when that
// read fails once (a remote upstream briefly unreachable), the view goes on
// once it succeeds. It used to stop for good: the feed's Read returned the
// error, and a view stops on an error reading its source.
func TestCatchUpSurvivesAnInputThatFailsOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &fakeInput{name: "a", states: map[uint64]statetree.Value{}, push: make(chan func(PushFunc))}
	f := NewFeed([]Input{a}, 2)
	go f.Run(ctx)
	root := statetree.EmptyMap()
	a.states[0] = root
	r0 := root // by value: set replaces root while the push may still run
	a.push <- func(p PushFunc) { p(0, nil, r0, true) }
	set := func(seq uint64) {
		nr, ops, err := root.Set(statetree.Path{fmt.Sprint("k", seq%3)}, statetree.Int(int64(seq)))
		if err != nil {
			t.Fatal(err)
		}
		root = nr
		a.set(seq, root, ops)
	}
	var hold sync.Mutex
	v, err := view.New(view.Config{Name: "c", Reducer: copyReducer{f, &hold}, Log: f})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- v.Run(ctx) }()
	for seq := uint64(1); seq <= 3; seq++ {
		set(seq)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := v.WaitFor(wctx, 3); err != nil {
		t.Fatal(err)
	}
	hold.Lock()
	for seq := uint64(4); seq <= 20; seq++ { // the view is stuck at 4; the feed forgets it
		set(seq)
	}
	a.mu.Lock()
	a.fails = 1
	a.mu.Unlock()
	hold.Unlock()
	for {
		if _, s := v.State(); s >= 20 {
			break
		}
		select {
		case err := <-runErr:
			t.Fatalf("the view stopped at seq %d: %v", v.Status().Seq, err)
		case <-wctx.Done():
			t.Fatalf("the view is at seq %d after 10 s, want 20", v.Status().Seq)
		case <-time.After(time.Millisecond):
		}
	}
	got, _ := v.State()
	if in, _ := got.Get(statetree.Path{"in"}); in.Hash() != root.Hash() {
		t.Fatalf("the view holds %s, want %s", in.AppendJSON(nil), root.AppendJSON(nil))
	}
}

// TestFeedHoldsLittleWhileAnInputIsMissing: while one input is not
// following (an upstream refusing it), the other's changes are not kept
// one by one (they used to pile up without a bound); once the missing
// input comes, the feed starts from both inputs' states and follows.
func TestFeedHoldsLittleWhileAnInputIsMissing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b, f := runTwoInputFeed(ctx, 8)
	root := statetree.EmptyMap()
	a.set(0, root, nil)
	for seq := uint64(1); seq <= 1000; seq++ {
		nr, ops, err := root.Set(statetree.Path{fmt.Sprint("k", seq%50)}, statetree.Int(int64(seq)))
		if err != nil {
			t.Fatal(err)
		}
		root = nr
		a.set(seq, root, ops)
	}
	f.mu.Lock()
	held := len(f.in[0].pending)
	f.mu.Unlock()
	if held > 8 {
		t.Fatalf("the feed holds %d changes of input a while b is missing (retention 8)", held)
	}
	broot, _ := statetree.Map(map[string]statetree.Value{"b": statetree.Int(1)})
	b.set(1000, broot, nil)
	nr, ops, _ := root.Set(statetree.Path{"last"}, statetree.Int(1))
	a.set(1001, nr, ops)
	b.set(1001, broot, nil)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := f.Wait(wctx, 1000); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.base.seq != 1000 || f.base.roots[0].Hash() != root.Hash() || f.base.roots[1].Hash() != broot.Hash() {
		t.Fatalf("the feed starts at %d with %s and %s", f.base.seq, f.base.roots[0].AppendJSON(nil), f.base.roots[1].AppendJSON(nil))
	}
	if f.merged != 1001 || len(f.frames) != 1 || f.frames[0].roots[0].Hash() != nr.Hash() {
		t.Fatalf("after the start: merged %d, %d frames", f.merged, len(f.frames))
	}
}
