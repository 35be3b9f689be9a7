package view

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// messyReducer makes one to three changes per event, reads back what it
// wrote, and rejects every seventh event after changing the state (those
// changes must vanish). Events of type "skip" it does not consume.
type messyReducer struct{ failAt uint64 }

func (r *messyReducer) Consumes(t string) bool { return t != "skip" }
func (r *messyReducer) Hash() string           { return "messy" }
func (r *messyReducer) Close() error           { return nil }
func (r *messyReducer) Reduce(_ context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if rec.Seq == r.failAt {
		tx.Set(statetree.Path{"failed"}, statetree.Bool(true))
		return errors.New("boom")
	}
	k := strconv.FormatUint(rec.Seq%37, 10)
	cnt, _ := tx.Get(statetree.Path{"counts", k})
	if err := tx.Set(statetree.Path{"counts", k}, statetree.Int(cnt.Int()+1)); err != nil {
		return err
	}
	if rec.Seq%3 == 0 {
		if err := tx.Delete(statetree.Path{"counts", strconv.FormatUint(rec.Seq%11, 10)}); err != nil {
			return err
		}
	}
	if rec.Seq%5 == 0 {
		if err := tx.Set(statetree.Path{"last", "five"}, statetree.Int(int64(rec.Seq))); err != nil {
			return err
		}
	}
	if rec.Seq%7 == 0 {
		return fmt.Errorf("%w: seven", ErrRejected)
	}
	return nil
}

func messyLog(t *testing.T, n int) *memlog.Log {
	t.Helper()
	l := memlog.New()
	recs := make([]eventlog.Record, n)
	for i := range recs {
		typ := "e"
		if i%4 == 1 {
			typ = "skip"
		}
		recs[i] = eventlog.Record{Seq: uint64(i + 1), Producer: "p", PSeq: uint64(i + 1), Type: typ, Payload: []byte(`{}`)}
	}
	if err := l.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return l
}

// referenceStates applies the log one event per transaction, discarding
// rejected events: the state after every seq, and the number of
// rejections.
func referenceStates(t *testing.T, l eventlog.Log, red Reducer, n int) ([]statetree.Value, uint64) {
	t.Helper()
	recs, err := l.Read(context.Background(), 1, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	states := []statetree.Value{statetree.EmptyMap()}
	root := states[0]
	rejected := uint64(0)
	for i := range recs {
		if red.Consumes(recs[i].Type) {
			tx := root.Begin()
			if err := red.Reduce(context.Background(), &recs[i], tx); err == nil {
				root, _ = tx.Commit()
			} else if errors.Is(err, ErrRejected) {
				rejected++
			} else {
				t.Fatalf("reference: seq %d: %v", recs[i].Seq, err)
			}
		}
		states = append(states, root)
	}
	if rejected == 0 {
		t.Fatal("reference: no event rejected")
	}
	return states, rejected
}

// TestRunsEqualOneEventAtATime checks the view engine's runs (one
// transaction per run, rejected events rolled back inside it) against one
// transaction per event: same state at every run end, same ops per event,
// the same rejections, checkpoints at epoch boundaries.
func TestRunsEqualOneEventAtATime(t *testing.T) {
	n := 2*abi.EpochSize + 1500
	l := messyLog(t, n)
	ref, rejected := referenceStates(t, l, &messyReducer{}, n)
	for _, tc := range []struct {
		name string
		red  Reducer
	}{{"Reducer", &messyReducer{}}} {
		t.Run(tc.name, func(t *testing.T) {
			v, _, _ := runView(t, Config{Name: "messy", Reducer: tc.red, Log: l, BatchSize: 700})
			sub := v.Subscribe(n + 10)
			waitSeq(t, v, uint64(n))
			root, _ := v.State()
			if root.Hash() != ref[n].Hash() {
				t.Fatalf("final state %s, one event at a time %s", root, ref[n])
			}
			if got := v.Status().Rejected; got != rejected {
				t.Fatalf("%d rejections, want %d", got, rejected)
			}
			// The subscription may have started after some runs: follow
			// from the first update that carries a state.
			var doc statetree.Value
			following := false
			checked := 0
			for last := uint64(0); last < uint64(n); {
				u := <-sub.C
				last = u.Seq
				if !following {
					if u.HasRoot {
						doc, following = u.Root, true
					}
					continue
				}
				var err error
				if doc, err = statetree.Apply(doc, u.Ops); err != nil {
					t.Fatalf("seq %d: %v", u.Seq, err)
				}
				if doc.Hash() != ref[u.Seq].Hash() {
					t.Fatalf("seq %d: the ops so far give %s, one event at a time %s", u.Seq, doc, ref[u.Seq])
				}
				if u.HasRoot && u.Root.Hash() != doc.Hash() {
					t.Fatalf("seq %d: Root differs from the ops applied", u.Seq)
				}
				checked++
			}
			if checked == 0 {
				t.Fatal("no update checked")
			}
			var ckpts []current // the epoch boundaries' (the start's is at 0)
			v.ckptMu.Lock()
			for _, c := range v.ckpts {
				if c.seq > 0 {
					ckpts = append(ckpts, c)
				}
			}
			v.ckptMu.Unlock()
			if len(ckpts) != 2 {
				t.Fatalf("%d checkpoints, want 2 (one per epoch boundary)", len(ckpts))
			}
			for i, c := range ckpts {
				if want := uint64(i+1) * abi.EpochSize; c.seq != want || c.root.Hash() != ref[want].Hash() {
					t.Fatalf("checkpoint %d at seq %d, want the state one event at a time at %d", i, c.seq, want)
				}
			}
		})
	}
}

// TestRunFailureHaltsAtTheEvent: a failure inside a run halts the view at
// that seq with the state of the event before it, changes made by the
// failed event gone.
func TestRunFailureHaltsAtTheEvent(t *testing.T) {
	const n, at = 3000, 1235 // a consumed event
	l := messyLog(t, n)
	ref, _ := referenceStates(t, l, &messyReducer{}, n)
	for _, tc := range []struct {
		name string
		red  Reducer
	}{
		{"Reducer", &messyReducer{failAt: at}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _, _ := runView(t, Config{Name: "messy", Reducer: tc.red, Log: l, BatchSize: 500})
			deadline := time.Now().Add(10 * time.Second)
			for v.Status().Phase != PhaseHalted {
				if time.Now().After(deadline) {
					t.Fatalf("view did not halt: %+v", v.Status())
				}
				time.Sleep(time.Millisecond)
			}
			if st := v.Status(); st.HaltedAt != at || st.Seq != at-1 {
				t.Fatalf("status %+v, want halted at %d serving %d", st, at, at-1)
			}
			root, seq := v.State()
			if seq != at-1 || root.Hash() != ref[at-1].Hash() {
				t.Fatalf("serving seq %d %s, want seq %d %s", seq, root, at-1, ref[at-1])
			}
		})
	}
}

// TestReplayRunsEqualOneEventAtATime: Replay (shadow replays, dry runs)
// uses the same runs.
func TestReplayRunsEqualOneEventAtATime(t *testing.T) {
	n := abi.EpochSize + 999
	l := messyLog(t, n)
	ref, rejected := referenceStates(t, l, &messyReducer{}, n)
	res, err := Replay(context.Background(), ReplayConfig{Log: l, Reducer: &messyReducer{}, BatchSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq != uint64(n) || res.Root.Hash() != ref[n].Hash() || res.Rejected != rejected {
		t.Fatalf("replay: seq %d rejected %d %s; want seq %d rejected %d %s", res.Seq, res.Rejected, res.Root, n, rejected, ref[n])
	}
	res, err = Replay(context.Background(), ReplayConfig{Log: l, Reducer: &messyReducer{failAt: 777}, BatchSize: 300})
	var re *ReplayError
	if !errors.As(err, &re) || re.Seq != 777 || res.Seq != 776 || res.Root.Hash() != ref[776].Hash() {
		t.Fatalf("replay with a failure at 777: seq %d, %v", res.Seq, err)
	}
}

// rereadReducer is messyReducer whose records at the seqs in gone fail once
// with ErrReread, after changing the state, as a cascade's record whose
// frame its Feed forgot does. reads counts the reads from each seq.
type rereadReducer struct {
	messyReducer
	gone map[uint64]bool
}

func (r *rereadReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if r.gone[rec.Seq] {
		delete(r.gone, rec.Seq)
		tx.Set(statetree.Path{"half-done"}, statetree.Bool(true))
		return fmt.Errorf("frame gone: %w", ErrReread)
	}
	return r.messyReducer.Reduce(ctx, rec, tx)
}

// countingLog counts the Reads from each seq.
type countingLog struct {
	eventlog.Log
	mu    sync.Mutex
	reads map[uint64]int
}

func (l *countingLog) Read(ctx context.Context, from uint64, max int, buf []eventlog.Record) ([]eventlog.Record, error) {
	l.mu.Lock()
	l.reads[from]++
	l.mu.Unlock()
	return l.Log.Read(ctx, from, max, buf)
}

// TestRereadDoesNotHalt: a record that fails with ErrReread is rolled back
// and read again (the view and Replay ask the source again from that seq)
// instead of halting the view; the end state is the one without the failure.
func TestRereadDoesNotHalt(t *testing.T) {
	const n = 3000
	l := messyLog(t, n)
	ref, _ := referenceStates(t, l, &messyReducer{}, n)
	gone := func() map[uint64]bool { return map[uint64]bool{1: true, 1235: true, 1236: true, 2999: true} }

	cl := &countingLog{Log: l, reads: map[uint64]int{}}
	v, _, _ := runView(t, Config{Name: "reread", Reducer: &rereadReducer{gone: gone()}, Log: cl, BatchSize: 500})
	waitSeq(t, v, n)
	if st := v.Status(); st.Phase == PhaseHalted {
		t.Fatalf("view halted: %+v", st)
	}
	if root, _ := v.State(); root.Hash() != ref[n].Hash() {
		t.Fatalf("state %s, want %s", root, ref[n])
	}
	cl.mu.Lock()
	for seq := range gone() { // none but 1 starts a batch of 500 otherwise
		if want := map[bool]int{true: 2, false: 1}[seq == 1]; cl.reads[seq] != want {
			t.Errorf("reads from seq %d: %d, want %d (read again from there)", seq, cl.reads[seq], want)
		}
	}
	cl.mu.Unlock()

	res, err := Replay(context.Background(), ReplayConfig{Log: l, Reducer: &rereadReducer{gone: gone()}, BatchSize: 300})
	if err != nil || res.Seq != n || res.Root.Hash() != ref[n].Hash() {
		t.Fatalf("replay: seq %d %s, %v; want seq %d %s", res.Seq, res.Root, err, n, ref[n])
	}
}
