package plugins_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/plugins"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// reduceAll runs events through a fresh instance of the named fixture and
// returns the store.
func reduceAll(t *testing.T, r *plugins.Runtime, name, view string, st *nodb.MemStore, evs []*plugins.Event) *nodb.MemStore {
	t.Helper()
	if st == nil {
		st = nodb.NewMemStore()
	}
	i := instance(t, compile(t, r, name), plugins.InstanceConfig{View: view, StartSeq: evs[0].Seq})
	for _, e := range evs {
		if err := i.Reduce(context.Background(), e, st); err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
	}
	return st
}

func ticks(from, to uint64) []*plugins.Event {
	var evs []*plugins.Event
	for s := from; s <= to; s++ {
		evs = append(evs, ev(s, "tick", "{}"))
	}
	return evs
}

// TestDeterminism: map iteration, time.Now, math/rand and crypto/rand give
// the same state on every replay, in separate runtimes.
func TestDeterminism(t *testing.T) {
	evs := ticks(1, abi.EpochSize+500)
	a := reduceAll(t, newRuntime(t, plugins.Config{CacheDir: t.TempDir()}), "chaos", "v", nil, evs).CBOR()
	b := reduceAll(t, newRuntime(t, plugins.Config{}), "chaos", "v", nil, evs).CBOR()
	if !bytes.Equal(a, b) {
		t.Fatal("two replays differ")
	}
	// The randomness is real: another view name gives another history.
	c := reduceAll(t, newRuntime(t, plugins.Config{}), "chaos", "w", nil, evs[:10]).CBOR()
	if bytes.Equal(a[:min(len(a), len(c))], c) {
		t.Error("view name does not seed randomness")
	}
	// The clock is the event's time.
	var state struct {
		Log map[string]struct {
			Now  int64 `cbor:"now"`
			Mono int64 `cbor:"mono"`
		} `cbor:"log"`
	}
	if err := cbor.Unmarshal(a, &state); err != nil {
		t.Fatal(err)
	}
	if got := state.Log["5"].Now; got != evs[4].Time {
		t.Errorf("time.Now() = %d, want the event time %d", got, evs[4].Time)
	}
}

// TestEpochReplay: reducing 1..N continuously equals loading the state at an
// epoch boundary into a fresh instance and reducing the tail.
func TestEpochReplay(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	const boundary = 2 * abi.EpochSize
	n := uint64(boundary + 300)
	full := reduceAll(t, r, "chaos", "v", nil, ticks(1, n)).CBOR()

	head := reduceAll(t, r, "chaos", "v", nil, ticks(1, boundary)).CBOR()
	st := nodb.NewMemStore()
	if err := st.Set("", head); err != nil {
		t.Fatal(err)
	}
	tail := reduceAll(t, r, "chaos", "v", st, ticks(boundary+1, n)).CBOR()
	if !bytes.Equal(full, tail) {
		t.Fatal("snapshot + tail differs from full replay")
	}
	// Starting mid-epoch is not equivalent: that is why snapshots are taken
	// at boundaries only.
	mid := reduceAll(t, r, "chaos", "v", nil, ticks(1, boundary+100)).CBOR()
	st2 := nodb.NewMemStore()
	_ = st2.Set("", mid)
	tail2 := reduceAll(t, r, "chaos", "v", st2, ticks(boundary+101, n)).CBOR()
	if bytes.Equal(full, tail2) {
		t.Log("note: a mid-epoch restart happened to match")
	}
}

// TestPrefetchedGuestsEqualFresh: the guests prepared in the background for
// the next epoch give the same history as guests made at the boundary, and
// they are used: chaos over three epoch boundaries, with and without.
func TestPrefetchedGuestsEqualFresh(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	evs := ticks(1, 3*abi.EpochSize+200)
	for _, e := range evs { // a clock going backwards: a fresh guest's monotonic clock starts again
		e.Time = int64(len(evs)-int(e.Seq)) * 1e6
	}
	run := func() ([]byte, int) {
		i := instance(t, compile(t, r, "chaos"), plugins.InstanceConfig{View: "v"})
		st := nodb.NewMemStore()
		for _, e := range evs {
			if err := i.Reduce(context.Background(), e, st); err != nil {
				t.Fatalf("seq %d: %v", e.Seq, err)
			}
		}
		return st.CBOR(), i.Adopted()
	}
	with, adopted := run()
	if adopted != 3 {
		t.Errorf("%d prefetched guests adopted over 3 boundaries, want 3", adopted)
	}
	defer plugins.SetPrefetch(false)()
	without, adopted := run()
	if adopted != 0 {
		t.Errorf("%d prefetched guests adopted with prefetching off", adopted)
	}
	if !bytes.Equal(with, without) {
		t.Fatal("prefetched guests give another history than fresh ones")
	}
}

// TestPrefetchSparse: a view that reduces only a few events per epoch
// prepares no spare guest, and an instance closed while one is being
// prepared waits for it and releases it.
func TestPrefetchSparse(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "chaos"), plugins.InstanceConfig{View: "v"})
	st := nodb.NewMemStore()
	for s := uint64(1); s < 3*abi.EpochSize; s += 97 {
		if err := i.Reduce(context.Background(), ev(s, "tick", "{}"), st); err != nil {
			t.Fatal(err)
		}
	}
	if n := i.Adopted(); n != 0 {
		t.Errorf("a sparse view adopted %d prefetched guests", n)
	}
	j := instance(t, compile(t, r, "chaos"), plugins.InstanceConfig{View: "v"})
	for _, e := range ticks(1, abi.EpochSize-1) {
		if err := j.Reduce(context.Background(), e, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTodosWasmEqualsNative: the todos reducer gives the same state (and
// rejects the same events) through Wasm and natively.
func TestTodosWasmEqualsNative(t *testing.T) {
	evs := todoEvents(6000)
	evs = append(evs,
		ev(6001, "todo/add", `{"id":"t5999","text":"dup"}`),
		ev(6002, "todo/add", `{"text":"no id"}`),
		ev(6003, "todo/toggle", `{"id":"t5990"}`),
		ev(6004, "todo/clear-completed", `{}`),
		ev(6005, "todo/add", `{"id":"a/b~c","text":"escaped \u00e9"}`),
	)
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "todos"), plugins.InstanceConfig{View: "todos"})
	st := nodb.NewMemStore()
	h := nodb.NewHarness()
	for _, e := range evs {
		before := st.CBOR()
		werr := i.Reduce(context.Background(), e, st)
		nerr := h.ReduceEvent(e.Seq, e.Time, e.Producer, e.PSeq, e.Type, e.Payload)
		var re *plugins.ReducerError
		var ne *nodb.RejectedError
		if errors.As(werr, &re) != errors.As(nerr, &ne) || (werr == nil) != (nerr == nil) {
			t.Fatalf("seq %d: wasm %v, native %v", e.Seq, werr, nerr)
		}
		if re != nil {
			if re.Message != ne.Message {
				t.Fatalf("seq %d: messages %q vs %q", e.Seq, re.Message, ne.Message)
			}
			// The view engine discards a rejected event's changes; so do we.
			_ = st.Set("", before)
		}
	}
	got, want := st.CBOR(), h.Store.(*nodb.MemStore).CBOR()
	if !bytes.Equal(got, want) {
		t.Fatalf("wasm and native states differ:\n%s\n%s", st.JSON(), h.Store.(*nodb.MemStore).JSON())
	}
	if v, _ := h.Get("/todos/a~1b~0c/text"); v.Str() != "escaped é" {
		t.Errorf("escaped id: %v", v)
	}
}

func TestInfo(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	m := compile(t, r, "todos")
	info := m.Info()
	if info.ABIVersion != abi.Version || info.Kind != "reducer" || len(info.Consumes) != 5 || info.SHA256 == [32]byte{} {
		t.Fatalf("%+v", info)
	}
	if !info.ConsumesType("todo/add") || info.ConsumesType("other") {
		t.Error("ConsumesType")
	}
	// WAT fixtures declare nothing: they consume every type.
	if w := compile(t, r, "trap1000").Info(); w.Consumes != nil || !w.ConsumesType("anything") {
		t.Errorf("%+v", w)
	}
	// Unconsumed types never enter Wasm.
	i := instance(t, m, plugins.InstanceConfig{})
	if err := i.Reduce(context.Background(), ev(1, "not/mine", "not even JSON"), nodb.NewMemStore()); err != nil {
		t.Error(err)
	}
}
