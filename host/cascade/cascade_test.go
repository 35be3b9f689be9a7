package cascade_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/host/cascade"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
	"github.com/nodb-dev/nodb/sdk/guest/c/conformance"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// wasm builds the Go guest at pkg (relative to the repository root) once
// per test binary.
func wasm(t *testing.T, name, pkg string) []byte {
	t.Helper()
	buildOnce.Do(func() { buildDir, buildErr = os.MkdirTemp("", "nodb-cascade-wasm") })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	out := filepath.Join(buildDir, name+".wasm")
	if _, err := os.Stat(out); err != nil {
		if err := gowasm.Build(context.Background(), "../..", pkg, out); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type env struct {
	t     *testing.T
	ctx   context.Context
	log   *memlog.Log
	rt    *plugins.Runtime
	mods  map[string]*plugins.Module
	views map[string]*view.View
	mu    sync.Mutex
	seq   uint64
	wg    sync.WaitGroup // running views and cascades
	join  string         // the module startJoin runs: "join" (Go) or "join-c" (C)
}

// goRun runs f (a view's or cascade's Run) until the test ends.
func (e *env) goRun(f func(context.Context) error, ctx context.Context) {
	e.wg.Add(1)
	go func() { defer e.wg.Done(); f(ctx) }()
}

func newEnv(t *testing.T) *env {
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := plugins.NewRuntime(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, log: memlog.New(), rt: rt, mods: map[string]*plugins.Module{}, views: map[string]*view.View{}}
	// Cleanups run last-registered first: stop every view and cascade and
	// wait for them before the runtime (and the guests' memory) goes away.
	t.Cleanup(func() { rt.Close(context.Background()) })
	t.Cleanup(func() { cancel(); e.wg.Wait() })
	for name, pkg := range map[string]string{
		"todos":   "./examples/todos/reducer",
		"owners":  "./host/cascade/testdata/owners",
		"owners2": "./host/cascade/testdata/owners2",
		"join":    "./host/cascade/testdata/join",
		"spin":    "./host/cascade/testdata/spin",
	} {
		m, err := rt.Compile(ctx, wasm(t, name, pkg))
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		e.mods[name] = m
	}
	// The join cascade written in C (testdata/join-c/join.c, built by its
	// build.sh with the C SDK; checked in so no clang is needed here).
	b, err := os.ReadFile("testdata/join-c.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if e.mods["join-c"], err = rt.Compile(ctx, b); err != nil {
		t.Fatalf("compile join-c: %v", err)
	}
	e.join = "join"
	return e
}

func (e *env) startView(name, mod string) *view.View {
	e.t.Helper()
	m := e.mods[mod]
	red, err := view.NewWasmReducer(e.ctx, m, name, plugins.InstanceConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := view.New(view.Config{Name: name, Reducer: red, Log: e.log, Factory: func(ctx context.Context, start uint64) (view.Reducer, error) {
		return view.NewWasmReducer(ctx, m, name, plugins.InstanceConfig{StartSeq: start})
	}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.goRun(v.Run, e.ctx)
	e.mu.Lock()
	e.views[name] = v
	e.mu.Unlock()
	return v
}

func (e *env) lookup(name string) func() *view.View {
	return func() *view.View {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.views[name]
	}
}

// startJoin starts a join cascade (module e.join) over the local views
// todos and owners.
func (e *env) startJoin(ctx context.Context, retain int) *cascade.Cascade {
	e.t.Helper()
	c, err := cascade.New(ctx, cascade.Config{
		Name:   "join",
		Module: e.mods[e.join],
		Inputs: []cascade.Input{
			&cascade.LocalInput{InputName: "todos", Lookup: e.lookup("todos")},
			&cascade.LocalInput{InputName: "owners", Lookup: e.lookup("owners")},
		},
		Retain: retain,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.goRun(c.Run, ctx)
	return c
}

// publish appends n random events of both inputs' types.
func (e *env) publish(r *rand.Rand, n int) {
	e.t.Helper()
	recs := make([]eventlog.Record, 0, n)
	for range n {
		e.seq++
		id := fmt.Sprintf("t%d", r.IntN(40))
		var typ, payload string
		switch k := r.IntN(10); {
		case k < 4:
			typ, payload = "todo/add", fmt.Sprintf(`{"id":%q,"text":"x"}`, id)
		case k < 6:
			typ, payload = "todo/toggle", fmt.Sprintf(`{"id":%q}`, id)
		case k < 7:
			typ, payload = "todo/delete", fmt.Sprintf(`{"id":%q}`, id)
		case k < 9:
			typ, payload = "owner/assign", fmt.Sprintf(`{"id":%q,"owner":%q}`, id, []string{"ann", "bob", "cyd"}[r.IntN(3)])
		default:
			typ, payload = "other/noise", `{}`
		}
		recs = append(recs, e.record(typ, payload))
	}
	if err := e.log.Append(e.ctx, recs); err != nil {
		e.t.Fatal(err)
	}
}

// record returns the next event of the log.
func (e *env) record(typ, payload string) eventlog.Record {
	return eventlog.Record{Seq: e.seq, Producer: "p", PSeq: e.seq, Time: int64(e.seq) * 1e6, Type: typ, Payload: []byte(payload)}
}

// publishOne appends one event.
func (e *env) publishOne(typ, payload string) {
	e.t.Helper()
	e.seq++
	if err := e.log.Append(e.ctx, []eventlog.Record{e.record(typ, payload)}); err != nil {
		e.t.Fatal(err)
	}
}

func waitSeq(t *testing.T, v *view.View, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := v.WaitFor(ctx, seq); err != nil {
		t.Fatalf("view %s did not reach seq %d: %v (status %+v)", v.Name(), seq, err, v.Status())
	}
}

// model computes the join cascade's /by_owner from its inputs' states.
func model(t *testing.T, todos, owners statetree.Value) string {
	t.Helper()
	var td struct {
		Todos map[string]struct {
			Done bool `json:"done"`
		} `json:"todos"`
	}
	var ow struct {
		Owners map[string]string `json:"owners"`
	}
	if err := json.Unmarshal(todos.AppendJSON(nil), &td); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(owners.AppendJSON(nil), &ow); err != nil {
		t.Fatal(err)
	}
	by := map[string]map[string]int{}
	for id, x := range td.Todos {
		o := ow.Owners[id]
		if o == "" {
			o = "nobody"
		}
		if by[o] == nil {
			by[o] = map[string]int{"open": 0, "done": 0}
		}
		if x.Done {
			by[o]["done"]++
		} else {
			by[o]["open"]++
		}
	}
	b, _ := json.Marshal(by)
	return string(b)
}

func byOwner(t *testing.T, root statetree.Value) string {
	t.Helper()
	v, ok := root.Get(statetree.Path{"by_owner"})
	if !ok {
		return "{}"
	}
	var m map[string]any
	if err := json.Unmarshal(v.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestCheckedInJoinCIsCurrent rebuilds testdata/join-c.wasm from
// testdata/join-c/join.c and the C SDK and compares it with the checked-in
// file, when the clang that built it is here (else it skips).
func TestCheckedInJoinCIsCurrent(t *testing.T) {
	b, err := os.ReadFile("testdata/join-c.wasm")
	if err != nil {
		t.Fatal(err)
	}
	conformance.CheckBuild(t, b, "testdata/join-c/build.sh")
}

// TestCascadeTwoInputs: a cascade over two views gives the state its
// definition gives, live, after a restart (rebuilt from its inputs), after a
// full rebuild with a small retention (catch-up patches), and as of past
// seqs.
func TestCascadeTwoInputs(t *testing.T) {
	for _, join := range []string{"join", "join-c"} {
		t.Run(join, func(t *testing.T) { testCascadeTwoInputs(t, join) })
	}
}

// testCascadeTwoInputs is TestCascadeTwoInputs with the join cascade of
// module join: the Go one, or the same written with the C SDK.
func testCascadeTwoInputs(t *testing.T, join string) {
	e := newEnv(t)
	e.join = join
	todos := e.startView("todos", "todos")
	owners := e.startView("owners", "owners")
	r := rand.New(rand.NewPCG(1, 2))
	e.publish(r, 500)
	liveCtx, stopLive := context.WithCancel(e.ctx)
	live := e.startJoin(liveCtx, 0)
	mid := uint64(0)
	for round := range 6 {
		e.publish(r, 300+r.IntN(300))
		if round == 2 {
			mid = e.seq
		}
		time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
	}
	// Last, changes of one input alone: each must reach the cascade.
	e.publishOne("todo/add", `{"id":"last","text":"x"}`)
	e.publishOne("owner/assign", `{"id":"last","owner":"dan"}`)
	waitSeq(t, todos, e.seq)
	waitSeq(t, owners, e.seq)
	waitSeq(t, live.View, e.seq)
	tr, _ := todos.State()
	or, _ := owners.State()
	want := model(t, tr, or)
	lr, _ := live.View.State()
	if got := byOwner(t, lr); got != want {
		t.Fatalf("live cascade:\n got %s\nwant %s", got, want)
	}
	if st := live.View.Status(); st.Phase == view.PhaseHalted {
		t.Fatalf("cascade halted: %+v", st)
	}

	// Restart: a new cascade process state is rebuilt from the inputs.
	stopLive()
	restarted := e.startJoin(e.ctx, 0)
	waitSeq(t, restarted.View, e.seq)
	rr, _ := restarted.View.State()
	if rr.Hash() != lr.Hash() {
		t.Fatalf("after restart the cascade's root hash differs:\n got %s\nwant %s", rr.AppendJSON(nil), lr.AppendJSON(nil))
	}

	// A tiny retention forces catch-up patches while events keep coming.
	small := e.startJoin(e.ctx, 4)
	for range 5 {
		e.publish(r, 200)
	}
	waitSeq(t, todos, e.seq)
	waitSeq(t, owners, e.seq)
	waitSeq(t, small.View, e.seq)
	waitSeq(t, restarted.View, e.seq)
	sr, _ := small.View.State()
	rr, _ = restarted.View.State()
	tr, _ = todos.State()
	or, _ = owners.State()
	if got, want := byOwner(t, sr), model(t, tr, or); got != want {
		t.Fatalf("cascade with retention 4:\n got %s\nwant %s", got, want)
	}
	if sr.Hash() != rr.Hash() {
		t.Fatalf("cascades fed differently disagree:\n%s\n%s", sr.AppendJSON(nil), rr.AppendJSON(nil))
	}

	// Time travel.
	past, err := restarted.View.StateAt(e.ctx, mid)
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := todos.StateAt(e.ctx, mid)
	op, _ := owners.StateAt(e.ctx, mid)
	if got, want := byOwner(t, past), model(t, tp, op); got != want {
		t.Fatalf("state at %d:\n got %s\nwant %s", mid, got, want)
	}
}

// TestUpstreamSwapPropagates: hot-swapping an input's reducer reaches the
// cascade as a patch, and the cascade ends equal to a from-scratch rebuild.
func TestUpstreamSwapPropagates(t *testing.T) {
	e := newEnv(t)
	todos := e.startView("todos", "todos")
	owners := e.startView("owners", "owners")
	r := rand.New(rand.NewPCG(3, 4))
	e.publish(r, 800)
	c := e.startJoin(e.ctx, 0)
	waitSeq(t, c.View, e.seq)
	sub := c.View.Subscribe(1 << 16)
	defer sub.Close()
	before, _ := c.View.State()

	m2 := e.mods["owners2"]
	shadow, err := view.NewWasmReducer(e.ctx, m2, "owners", plugins.InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := view.Replay(e.ctx, view.ReplayConfig{Log: e.log, Reducer: shadow})
	if err != nil {
		t.Fatal(err)
	}
	next, err := view.NewWasmReducer(e.ctx, m2, "owners", plugins.InstanceConfig{StartSeq: res.Seq + 1})
	if err != nil {
		t.Fatal(err)
	}
	shadow.Close()
	rep, err := owners.Swap(e.ctx, view.SwapRequest{Reducer: next, Replay: res})
	if err != nil || !rep.Swapped {
		t.Fatalf("swap: %v %+v", err, rep)
	}
	// The swap's diff travels with the next event (the host records a
	// nodb/swap event for that; here any event does).
	e.publish(r, 1)
	waitSeq(t, owners, e.seq)
	waitSeq(t, c.View, e.seq)
	after, _ := c.View.State()
	if after.Hash() == before.Hash() {
		t.Fatal("the cascade did not change after its input's reducer was swapped")
	}
	if !strings.Contains(byOwner(t, after), `"ANN"`) {
		t.Fatalf("cascade after swap has no upper-cased owners: %s", byOwner(t, after))
	}
	// Read the subscription up to the last seq: a view publishes its state
	// (what waitSeq sees) just before it hands the run's updates to its
	// subscribers, so they may still be on their way.
	got := false
	timeout := time.After(30 * time.Second)
	for last := uint64(0); last < e.seq; {
		select {
		case u, ok := <-sub.C:
			if !ok {
				t.Fatalf("the subscription ended (lagged: %v)", sub.Lagged())
			}
			last = u.Seq
			if len(u.Ops) > 0 {
				got = true
			}
		case <-timeout:
			t.Fatalf("the cascade's subscribers got no update for seq %d in 30 s", e.seq)
		}
	}
	if !got {
		t.Fatal("the cascade's subscribers got no patch for the swap")
	}
	fresh := e.startJoin(e.ctx, 0)
	waitSeq(t, fresh.View, e.seq)
	fr, _ := fresh.View.State()
	if fr.Hash() != after.Hash() {
		t.Fatalf("after the upstream swap the cascade differs from a rebuild:\n got %s\nwant %s", after.AppendJSON(nil), fr.AppendJSON(nil))
	}
	tr, _ := todos.State()
	or, _ := owners.State()
	if got, want := byOwner(t, after), model(t, tr, or); got != want {
		t.Fatalf("cascade after swap:\n got %s\nwant %s", got, want)
	}
}

// TestCascadeOverBudgetIsHalted: a cascade that exceeds its time limit (a
// third party's token limits become its instance limits) halts with the
// error reported; another cascade over the same input and the input itself
// go on.
func TestCascadeOverBudgetIsHalted(t *testing.T) {
	e := newEnv(t)
	todos := e.startView("todos", "todos")
	e.startView("owners", "owners")
	bad, err := cascade.New(e.ctx, cascade.Config{
		Name:     "spin",
		Module:   e.mods["spin"],
		Inputs:   []cascade.Input{&cascade.LocalInput{InputName: "todos", Lookup: e.lookup("todos")}},
		Instance: plugins.InstanceConfig{EventTimeout: 100 * time.Millisecond, MemoryLimitPages: 64},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.goRun(bad.Run, e.ctx)
	good := e.startJoin(e.ctx, 0)
	r := rand.New(rand.NewPCG(5, 6))
	e.publish(r, 300)
	waitSeq(t, todos, e.seq)
	waitSeq(t, good.View, e.seq)
	deadline := time.Now().Add(30 * time.Second)
	for bad.View.Status().Phase != view.PhaseHalted {
		if time.Now().After(deadline) {
			t.Fatalf("the spinning cascade was not halted: %+v", bad.View.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := bad.View.Status()
	if !strings.Contains(st.Error, "time") && !strings.Contains(st.Error, "fuel") {
		t.Fatalf("halt error does not say why: %q", st.Error)
	}
	e.publish(r, 100)
	waitSeq(t, good.View, e.seq)
}

// haltingReducer runs a view's reducer but fails at events of type bad, as
// a reducer with a bug would: the view halts there.
type haltingReducer struct {
	view.Reducer
	bad string
}

func (h haltingReducer) Consumes(t string) bool { return t == h.bad || h.Reducer.Consumes(t) }
func (h haltingReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if rec.Type == h.bad {
		return fmt.Errorf("%s: this reducer cannot handle it", rec.Type)
	}
	return h.Reducer.Reduce(ctx, rec, tx)
}

// TestCascadeBoundedWhileAnInputIsHalted: the owners view halts at a bad
// event while the todos view goes on for 3000 events. The join cascade over
// both waits at the halt, and its feed holds at most about its retention of
// todos' changes (it used to hold every one, growing without a bound); its
// note says why it waits. Once owners is healed (a hot swap to a reducer
// that ignores the bad event), the cascade catches up and equals both a
// rebuild and the model.
func TestCascadeBoundedWhileAnInputIsHalted(t *testing.T) {
	const retain = 16
	e := newEnv(t)
	todos := e.startView("todos", "todos")
	m := e.mods["owners"]
	red, err := view.NewWasmReducer(e.ctx, m, "owners", plugins.InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	owners, err := view.New(view.Config{Name: "owners", Reducer: haltingReducer{red, "owner/bad"}, Log: e.log, Factory: func(ctx context.Context, start uint64) (view.Reducer, error) {
		return view.NewWasmReducer(ctx, m, "owners", plugins.InstanceConfig{StartSeq: start})
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.goRun(owners.Run, e.ctx)
	e.mu.Lock()
	e.views["owners"] = owners
	e.mu.Unlock()
	r := rand.New(rand.NewPCG(9, 10))
	e.publish(r, 300)
	c := e.startJoin(e.ctx, retain)
	waitSeq(t, c.View, e.seq)

	e.publishOne("owner/bad", `{}`)
	bad := e.seq
	deadline := time.Now().Add(30 * time.Second)
	for owners.Status().Phase != view.PhaseHalted {
		if time.Now().After(deadline) {
			t.Fatalf("owners did not halt at the bad event: %+v", owners.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.publish(r, 3000)
	waitSeq(t, todos, e.seq)
	// The feed has had every change of todos once its input reached the
	// log's head.
	deadline = time.Now().Add(60 * time.Second)
	for {
		seqs, _ := cascade.Held(c.Feed)
		if seqs[0] == e.seq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cascade's todos input is at seq %d, want %d", seqs[0], e.seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, held := cascade.Held(c.Feed)
	t.Logf("while owners is halted: the feed holds %v changes (todos, owners) after %d events (retention %d)", held, e.seq-bad, retain)
	if held[0] > retain+1 {
		t.Fatalf("the feed holds %d changes of todos while owners is halted (retention %d)", held[0], retain)
	}
	if _, s := c.View.State(); s != bad-1 {
		t.Fatalf("the cascade is at seq %d while owners is halted before seq %d", s, bad)
	}
	if note := c.View.Status().Note; !strings.Contains(note, "input owners") || !strings.Contains(note, "catch-up") {
		t.Fatalf("the cascade's note while owners is halted: %q", note)
	}

	// Heal owners: a reducer that ignores the bad event replaces it.
	shadow, err := view.NewWasmReducer(e.ctx, m, "owners", plugins.InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := view.Replay(e.ctx, view.ReplayConfig{Log: e.log, Reducer: shadow})
	shadow.Close()
	if err != nil {
		t.Fatal(err)
	}
	next, err := view.NewWasmReducer(e.ctx, m, "owners", plugins.InstanceConfig{StartSeq: res.Seq + 1})
	if err != nil {
		t.Fatal(err)
	}
	// With a factory, as the deploy manager swaps: the cascade reads
	// owners' past states when it falls behind what its feed retains.
	factory := func(ctx context.Context, start uint64) (view.Reducer, error) {
		return view.NewWasmReducer(ctx, m, "owners", plugins.InstanceConfig{StartSeq: start})
	}
	if rep, err := owners.Swap(e.ctx, view.SwapRequest{Reducer: next, Factory: factory, Replay: res}); err != nil || !rep.Swapped {
		t.Fatalf("swap: %v %+v", err, rep)
	}
	e.publish(r, 300)
	waitSeq(t, todos, e.seq)
	waitSeq(t, owners, e.seq)
	waitSeq(t, c.View, e.seq)
	tr, _ := todos.State()
	or, _ := owners.State()
	live, _ := c.View.State()
	if got, want := byOwner(t, live), model(t, tr, or); got != want {
		t.Fatalf("the cascade after owners was healed:\n got %s\nwant %s", got, want)
	}
	fresh := e.startJoin(e.ctx, 0)
	waitSeq(t, fresh.View, e.seq)
	if fr, _ := fresh.View.State(); fr.Hash() != live.Hash() {
		t.Fatalf("the cascade after owners was healed differs from a rebuild:\n got %s\nwant %s", live.AppendJSON(nil), fr.AppendJSON(nil))
	}
	if note := c.View.Status().Note; note != "" {
		t.Fatalf("the cascade's note once owners follows again: %q", note)
	}
}
