package cascade

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// reset records input's state at seq and pushes it as a reset (a fresh
// state, the changes since its last push unknown).
func (f *fakeInput) reset(seq uint64, root statetree.Value) {
	f.mu.Lock()
	f.states[seq] = root
	f.mu.Unlock()
	done := make(chan struct{})
	f.push <- func(p PushFunc) { p(seq, nil, root, true); close(done) }
	<-done
}

// record records input's state at seq without pushing it (a change its
// upstream made while the feed could not follow it).
func (f *fakeInput) record(seq uint64, root statetree.Value) {
	f.mu.Lock()
	f.states[seq] = root
	f.mu.Unlock()
}

// frameChecker reads every frame a Feed builds, right after the push that
// built it, and checks it against its inputs' true histories.
type frameChecker struct {
	t       *testing.T
	f       *Feed
	ins     []*fakeInput
	changed []map[uint64]bool // per input: the seqs at which it changed
	handle  uint64            // the newest frame read
	seq     uint64            // the seq of the newest frame read
	roots   []statetree.Value // the inputs' states in the newest frame read
	frames  int               // frames read
	catchUp int               // frames that skip a change of some input
	held    int               // the most pending changes an input held
}

// caughtUp checks the end of a lag: the feed is at last, its newest frame
// holds every input's final state (roots) and its note is empty (when,
// says the note's check).
func (c *frameChecker) caughtUp(last uint64, roots []statetree.Value, when string) {
	c.t.Helper()
	if c.f.LastSeq() != last {
		c.t.Fatalf("the feed is at seq %d, want %d", c.f.LastSeq(), last)
	}
	for i, in := range c.ins {
		if c.roots[i].Hash() != roots[i].Hash() {
			c.t.Fatalf("the last frame holds input %s as %s, want %s", in.name, c.roots[i].AppendJSON(nil), roots[i].AppendJSON(nil))
		}
	}
	if note := c.f.Note(); note != "" {
		c.t.Fatalf("the note is %q %s", note, when)
	}
}

// check reads the frames built since the last check: each frame's states
// are its inputs' true states as of its seq (no frame pairs states that
// never coexisted), and its ops lead from the previous frame's states to
// its own.
func (c *frameChecker) check() {
	c.t.Helper()
	c.f.mu.Lock()
	var frs []*frame
	for h := c.handle + 1; h <= c.f.nextH; h++ {
		fr := c.f.handles[h]
		if fr == nil {
			c.f.mu.Unlock()
			c.t.Fatalf("frame %d was forgotten before the test read it", h)
		}
		frs = append(frs, fr)
	}
	c.handle = c.f.nextH
	for _, in := range c.f.in {
		c.held = max(c.held, len(in.pending))
	}
	c.f.mu.Unlock()
	for _, fr := range frs {
		if fr.seq <= c.seq || fr.prev != c.seq {
			c.t.Fatalf("frame at seq %d (prev %d) after a frame at seq %d", fr.seq, fr.prev, c.seq)
		}
		skips := false
		for i, in := range c.ins {
			want, _ := in.StateAt(context.Background(), fr.seq)
			if fr.roots[i].Hash() != want.Hash() {
				c.t.Fatalf("the frame at seq %d holds input %s as %s; its state then was %s", fr.seq, in.name, fr.roots[i].AppendJSON(nil), want.AppendJSON(nil))
			}
			got := c.roots[i]
			if fr.ops[i] != nil {
				var err error
				if got, err = statetree.Apply(got, fr.ops[i]); err != nil {
					c.t.Fatalf("the ops of input %s at seq %d do not apply to the previous frame: %v", in.name, fr.seq, err)
				}
			}
			if got.Hash() != fr.roots[i].Hash() {
				c.t.Fatalf("the ops of input %s at seq %d lead to %s, not to the frame's %s", in.name, fr.seq, got.AppendJSON(nil), fr.roots[i].AppendJSON(nil))
			}
			for s := c.seq + 1; s < fr.seq && !skips; s++ {
				skips = c.changed[i][s]
			}
		}
		if skips {
			c.catchUp++
		}
		c.roots, c.seq = fr.roots, fr.seq
		c.frames++
	}
}

// TestFeedBoundsAnInputAheadOfAStalledOne: after the feed has started,
// input b stops following (its upstream halted, say) while input a changes
// 5000 times. The feed used to keep every one of those changes until b came
// back (memory grew without a bound); it now holds at most its retention
// of them (the oldest, and one standing for all the others), and delivers
// nothing it cannot pair with b's state. When b comes back, seq by seq or with one jump to its current
// state (a reset: its states in between are unknown), the feed delivers
// catch-up frames, then follows again: every frame holds the inputs' true
// states as of its seq, its ops lead from the previous frame's states to
// its own, and the last one holds both inputs' final states. A jump over a
// few seqs (no more changes than the retention) is delivered the same way;
// the feed used to pair a's states in between with b's stale one.
func TestFeedBoundsAnInputAheadOfAStalledOne(t *testing.T) {
	for _, tc := range []struct {
		stalled uint64 // seqs b misses
		jump    bool   // b comes back with a reset
	}{{5000, false}, {5000, true}, {5, true}} {
		t.Run(fmt.Sprintf("stalled=%d,jump=%v", tc.stalled, tc.jump), func(t *testing.T) {
			const retain = 8
			jump := tc.jump
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, b, f := runTwoInputFeed(ctx, retain)
			ins := []*fakeInput{a, b}
			roots := []statetree.Value{statetree.EmptyMap(), statetree.EmptyMap()}
			c := &frameChecker{t: t, f: f, ins: ins, changed: []map[uint64]bool{{}, {}}, roots: slices.Clone(roots)}
			a.reset(0, roots[0])
			b.reset(0, roots[1])
			r := rand.New(rand.NewPCG(7, 8))
			// change gives input i's next state at seq (nil ops: unchanged).
			change := func(i int, seq uint64, p int) []statetree.Op {
				if r.IntN(p) != 0 {
					return nil
				}
				nr, ops, err := roots[i].Set(statetree.Path{fmt.Sprint("k", r.IntN(50))}, statetree.Int(int64(seq)))
				if err != nil {
					t.Fatal(err)
				}
				roots[i] = nr
				c.changed[i][seq] = true
				return ops
			}
			// Both follow.
			const stall uint64 = 20
			back := stall + tc.stalled
			last := back + 20
			for seq := uint64(1); seq <= stall; seq++ {
				for i, in := range ins {
					in.set(seq, roots[i], change(i, seq, 2))
				}
				c.check()
			}
			// b stalls; a changes at every seq.
			before := c.frames
			for seq := stall + 1; seq <= back; seq++ {
				a.set(seq, roots[0], change(0, seq, 1))
				c.check()
			}
			t.Logf("while b stalled: at most %d changes held for %d changes of a (retention %d)", c.held, back-stall, retain)
			if c.held > retain+1 {
				t.Fatalf("the feed held %d changes of input a while b stalled (retention %d)", c.held, retain)
			}
			if c.frames != before || f.LastSeq() != stall {
				t.Fatalf("while b stalled the feed built %d frames and reached seq %d, want none and %d", c.frames-before, f.LastSeq(), stall)
			}
			if note := f.Note(); tc.stalled > retain && (!strings.Contains(note, "catch-up") || !strings.Contains(note, "input b")) {
				t.Fatalf("while b stalled the note is %q", note)
			}
			// b comes back: its changes meanwhile arrive one by one, or as
			// one jump to its current state.
			for seq := stall + 1; seq <= back; seq++ {
				ops := change(1, seq, 3)
				if jump {
					b.record(seq, roots[1])
					continue
				}
				b.set(seq, roots[1], ops)
				c.check()
			}
			if jump {
				b.reset(back, roots[1])
				c.check()
			}
			if f.LastSeq() != back || c.catchUp == 0 {
				t.Fatalf("after b came back the feed is at seq %d with %d catch-up frames, want seq %d and some", f.LastSeq(), c.catchUp, back)
			}
			// Both follow again.
			for seq := back + 1; seq <= last; seq++ {
				for i, in := range ins {
					in.set(seq, roots[i], change(i, seq, 2))
				}
				c.check()
			}
			t.Logf("%d frames, %d of them catch-ups; at most %d changes held", c.frames, c.catchUp, c.held)
			if c.held > retain+1 {
				t.Fatalf("the feed held %d changes of an input (retention %d)", c.held, retain)
			}
			c.caughtUp(last, roots, "once both inputs follow")
		})
	}
}

// TestFeedFollowsAnInputThatLags: input b follows, but at half the pace of
// input a, which changes at every seq, so b lags further and further
// behind. The feed holds at most its retention of a's changes, and the
// cascade still moves on with b, in coarser steps, instead of waiting for
// b to catch up with a (it stayed at seq 7 when a's changes merged into
// one at a's newest seq, which moved on as a did): once b reaches the seq
// a was at when the feed last moved, the feed moves again. Every frame
// holds the inputs' true states as of its seq; once b has caught up, the
// last one holds both inputs' final states.
func TestFeedFollowsAnInputThatLags(t *testing.T) {
	const retain = 8
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b, f := runTwoInputFeed(ctx, retain)
	ins := []*fakeInput{a, b}
	roots := []statetree.Value{statetree.EmptyMap(), statetree.EmptyMap()}
	c := &frameChecker{t: t, f: f, ins: ins, changed: []map[uint64]bool{{}, {}}, roots: slices.Clone(roots)}
	a.reset(0, roots[0])
	b.reset(0, roots[1])
	r := rand.New(rand.NewPCG(11, 12))
	change := func(i int, seq uint64) []statetree.Op {
		nr, ops, err := roots[i].Set(statetree.Path{fmt.Sprint("k", r.IntN(50))}, statetree.Int(int64(seq)))
		if err != nil {
			t.Fatal(err)
		}
		roots[i] = nr
		c.changed[i][seq] = true
		return ops
	}
	// b's history is written ahead, as its upstream's: b changes at every
	// third seq and follows at half a's pace.
	const last = 8000
	bRoots := make([]statetree.Value, last+1)
	bOps := make([][]statetree.Op, last+1)
	bRoots[0] = roots[1]
	for seq := uint64(1); seq <= last; seq++ {
		if seq%3 == 0 {
			bOps[seq] = change(1, seq)
		}
		bRoots[seq] = roots[1]
	}
	bSeq := uint64(0)
	merged, aThen, moves := uint64(0), uint64(0), 0 // the feed's seq, a's when it moved there
	for seq := uint64(1); seq <= last; seq++ {
		a.set(seq, roots[0], change(0, seq))
		if seq%2 == 0 {
			bSeq++
			b.set(bSeq, bRoots[bSeq], bOps[bSeq])
		}
		c.check()
		switch m := f.LastSeq(); {
		case m != merged:
			merged, aThen = m, seq
			moves++
		case seq%2 == 0 && bSeq >= aThen:
			t.Fatalf("b is at seq %d, at or past seq %d where a was when the feed moved to seq %d, and the feed has not moved since", bSeq, aThen, merged)
		}
		if seq%2000 == 0 {
			t.Logf("a at seq %d, b at seq %d: the feed at seq %d, %d frames", seq, bSeq, merged, c.frames)
		}
	}
	if c.held > retain+1 {
		t.Fatalf("the feed held %d changes of an input (retention %d)", c.held, retain)
	}
	if note := f.Note(); !strings.Contains(note, "input b (at seq 4000) lags behind input a (at seq 8000)") {
		t.Fatalf("the note while b lags: %q", note)
	}
	for bSeq < last {
		bSeq++
		b.set(bSeq, bRoots[bSeq], bOps[bSeq])
		c.check()
	}
	c.caughtUp(last, roots, "once b caught up")
	t.Logf("%d frames, %d of them catch-ups; the feed moved %d times while b lagged; at most %d changes held", c.frames, c.catchUp, moves, c.held)
}
