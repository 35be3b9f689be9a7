package view

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// markReducer is todoReducer plus, from seq from on, a "v2" mark on each
// added todo: a version that changes results.
type markReducer struct {
	todoReducer
	from uint64
}

func (r *markReducer) Hash() string { return "native-todos-v2" }
func (r *markReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if err := r.todoReducer.Reduce(ctx, rec, tx); err != nil {
		return err
	}
	if rec.Type == "todo/add" && rec.Seq >= r.from {
		v, _ := tx.Get(statetree.MustPath("/marks"))
		n := int64(0)
		if !v.IsNull() {
			n = v.Int()
		}
		return tx.Set(statetree.MustPath("/marks"), statetree.Int(n+1))
	}
	return nil
}

// sameReducer is todoReducer under another hash: a refactor.
type sameReducer struct{ todoReducer }

func (r *sameReducer) Hash() string { return "native-todos-v1-refactored" }

func replayAll(t *testing.T, l eventlog.Log, r Reducer, to uint64) statetree.Value {
	t.Helper()
	res, err := Replay(context.Background(), ReplayConfig{Log: l, Reducer: r, To: to})
	if err != nil {
		t.Fatal(err)
	}
	return res.Root
}

func TestSwapOnePatchThenNewReducer(t *testing.T) {
	l := memlog.New()
	fill(t, l, 1, 5000)
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l})
	waitSeq(t, v, 5000)
	sub := v.Subscribe(1 << 16)
	held, _ := v.State()

	newRed := &markReducer{from: 100}
	res, err := Replay(context.Background(), ReplayConfig{Log: l, Reducer: newRed, To: 4000})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Swap(context.Background(), SwapRequest{Reducer: newRed, Replay: res, Factory: func(context.Context, uint64) (Reducer, error) { return &markReducer{from: 100}, nil }})
	if err != nil || !rep.Swapped || rep.Identical || rep.Tail != 1000 || len(rep.Changes) == 0 {
		t.Fatalf("swap: %+v %v", rep, err)
	}
	if v.Status().Plugin != "native-todos-v2" {
		t.Fatal("status does not name the new plugin")
	}
	// The next event carries the swap as one patch from the held state.
	fill(t, l, 5001, 10)
	waitSeq(t, v, 5010)
	want := replayAll(t, l, &markReducer{from: 100}, 5010)
	if got, _ := v.State(); got.Hash() != want.Hash() {
		t.Fatal("state after the swap differs from a full replay of the new version")
	}
	cur := held
	var patches int
	for cur.Hash() != want.Hash() {
		select {
		case u := <-sub.C:
			if len(u.Ops) > 0 {
				patches++
			}
			if cur, err = statetree.Apply(cur, u.Ops); err != nil {
				t.Fatalf("applying update %d: %v", u.Seq, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscriber did not reach the new state")
		}
	}
	if patches > 10 {
		t.Fatalf("%d patches for 10 events", patches)
	}
	// Reads of past states use the new version.
	at, err := v.StateAt(context.Background(), 4321)
	if err != nil || at.Hash() != replayAll(t, l, &markReducer{from: 100}, 4321).Hash() {
		t.Fatalf("StateAt after swap: %v", err)
	}
}

func TestSwapIfIdentical(t *testing.T) {
	l := memlog.New()
	fill(t, l, 1, 3000)
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l})
	waitSeq(t, v, 3000)
	ctx := context.Background()

	// A changing version is refused, with the paths.
	red := &markReducer{from: 2000}
	res, _ := Replay(ctx, ReplayConfig{Log: l, Reducer: red})
	rep, err := v.Swap(ctx, SwapRequest{Reducer: red, Replay: res, IfIdentical: true})
	if !errors.Is(err, ErrSwapRefused) || rep.Swapped || len(rep.Changes) != 1 || rep.Changes[0].Path != "/marks" {
		t.Fatalf("refusal: %+v %v", rep, err)
	}
	if v.Hash() != "native-todos-v1" {
		t.Fatal("a refused swap changed the view")
	}
	// The dry run finds where.
	cr, err := Compare(ctx, CompareConfig{Log: l, Old: &todoReducer{}, New: &markReducer{from: 2000}})
	if err != nil || cr.Identical || cr.FirstDiff < 2000 || cr.FirstDiff > 2010 || cr.FirstDiffType != "todo/add" {
		t.Fatalf("compare: %+v %v", cr, err)
	}
	// An equivalent version is accepted.
	same := &sameReducer{}
	res, _ = Replay(ctx, ReplayConfig{Log: l, Reducer: same})
	rep, err = v.Swap(ctx, SwapRequest{Reducer: same, Replay: res, IfIdentical: true})
	if err != nil || !rep.Swapped || !rep.Identical || rep.Ops != 0 {
		t.Fatalf("equivalent: %+v %v", rep, err)
	}
	cr, _ = Compare(ctx, CompareConfig{Log: l, Old: &todoReducer{}, New: &sameReducer{}})
	if !cr.Identical || cr.Seq != 3000 {
		t.Fatalf("compare equivalent: %+v", cr)
	}
}

func TestSwapHealsHaltedView(t *testing.T) {
	l := memlog.New()
	fill(t, l, 1, 1000)
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{failAt: 500}, Log: l})
	deadline := time.Now().Add(5 * time.Second)
	for v.Status().Phase != PhaseHalted {
		if time.Now().After(deadline) {
			t.Fatal("not halted")
		}
		time.Sleep(time.Millisecond)
	}
	fixed := &sameReducer{}
	res, _ := Replay(context.Background(), ReplayConfig{Log: l, Reducer: fixed})
	if _, err := v.Swap(context.Background(), SwapRequest{Reducer: fixed, Replay: res}); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 1001, 5)
	waitSeq(t, v, 1005)
	if st := v.Status(); st.Phase != PhaseLive || st.Error != "" {
		t.Fatalf("status after healing: %+v", st)
	}
}

func TestStateAtEqualsPrefixReplay(t *testing.T) {
	l := memlog.New()
	n := 3*abi.EpochSize + 500
	fill(t, l, 1, n)
	dir := t.TempDir()
	factory := func(context.Context, uint64) (Reducer, error) { return &todoReducer{}, nil }
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l, SnapshotDir: dir, Factory: factory})
	waitSeq(t, v, uint64(n))
	for _, at := range []uint64{0, 1, 17, abi.EpochSize, abi.EpochSize + 1, 2*abi.EpochSize + 99, uint64(n) - 1, uint64(n)} {
		got, err := v.StateAt(context.Background(), at)
		if err != nil {
			t.Fatal(err)
		}
		want := statetree.EmptyMap()
		if at > 0 {
			want = replayAll(t, l, &todoReducer{}, at)
		}
		if got.Hash() != want.Hash() {
			t.Fatalf("state at %d differs from replaying the prefix", at)
		}
	}
	if _, err := v.StateAt(context.Background(), uint64(n)+1); err == nil {
		t.Fatal("a future seq gave a state")
	}
}

// gateReducer is sameReducer that, at seq at, says so on entered and waits
// for release: a swap whose catch-up takes a while.
type gateReducer struct {
	sameReducer
	at      uint64
	entered chan struct{}
	release chan struct{}
}

func (r *gateReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if rec.Seq == r.at {
		close(r.entered)
		<-r.release
	}
	return r.sameReducer.Reduce(ctx, rec, tx)
}

// TestSwapCallerGivesUpMidSwap: when the caller's context ends while the
// view is performing the swap (an HTTP client of activate that disconnects,
// say), Swap still reports what happened. It used to return the context's
// error while the view went on and swapped: the deploy manager then told
// the client the live view was untouched and did not record the new version
// as active, so the host ran one version while its store named another
// (a restart silently went back to the old one).
func TestSwapCallerGivesUpMidSwap(t *testing.T) {
	l := memlog.New()
	fill(t, l, 1, 3000)
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l})
	waitSeq(t, v, 3000)
	red := &gateReducer{at: 2500, entered: make(chan struct{}), release: make(chan struct{})}
	res, err := Replay(context.Background(), ReplayConfig{Log: l, Reducer: red, To: 2000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-red.entered // the view is catching the new reducer up
		cancel()
		time.Sleep(50 * time.Millisecond)
		close(red.release)
	}()
	rep, err := v.Swap(ctx, SwapRequest{Reducer: red, Replay: res})
	// Wait until the view is done with the request, whatever Swap said.
	<-red.release
	fill(t, l, 3001, 1)
	waitSeq(t, v, 3001)
	swapped := v.Hash() == red.Hash()
	if err != nil && swapped {
		t.Fatalf("Swap returned %v, but the view swapped", err)
	}
	if err == nil && (!rep.Swapped || !swapped) {
		t.Fatalf("Swap reported %+v, view swapped: %v", rep, swapped)
	}
}

// sparseSource holds only the records of l whose seq is even, as a
// cascade's Feed holds only the seqs at which an input changed.
type sparseSource struct{ l *memlog.Log }

func (s sparseSource) Read(ctx context.Context, from uint64, max int, buf []eventlog.Record) ([]eventlog.Record, error) {
	all, err := s.l.Read(ctx, from, 2*max+1, nil)
	buf = buf[:0]
	for _, r := range all {
		if r.Seq%2 == 0 && len(buf) < max {
			buf = append(buf, r)
		}
	}
	return buf, err
}
func (s sparseSource) LastSeq() uint64 { return s.l.LastSeq() }
func (s sparseSource) Wait(ctx context.Context, after uint64) (uint64, error) {
	return s.l.Wait(ctx, after)
}

// TestCompareOverASparseSource: a dry run over a source with gaps (a
// cascade's) ends at its To when no record has that seq and the next one
// is past it. It used to read from the same position forever.
func TestCompareOverASparseSource(t *testing.T) {
	l := memlog.New()
	fill(t, l, 1, 101)
	done := make(chan struct{})
	var cr CompareReport
	var err error
	go func() {
		defer close(done)
		cr, err = Compare(context.Background(), CompareConfig{Log: sparseSource{l}, Old: &todoReducer{}, New: &sameReducer{}, To: 99})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Compare did not end over a source with no record at To")
	}
	if err != nil || !cr.Identical || cr.Seq != 99 || cr.Events != 49 {
		t.Fatalf("compare: %+v %v", cr, err)
	}
}
