package plugins_test

import (
	"context"
	"strconv"
	"testing"

	_ "github.com/nodb-dev/nodb/examples/todos/reducer/todos" // native handlers
	"github.com/nodb-dev/nodb/plugins"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// todoEvents returns n todo events with seqs from 1: adds, toggles, renames
// and deletes over a working set of about 1000 todos.
func todoEvents(n int) []*plugins.Event {
	evs := make([]*plugins.Event, n)
	next := 0
	for k := range evs {
		seq := uint64(k + 1)
		var typ, payload string
		switch {
		case k%10 < 4:
			typ, payload = "todo/add", `{"id":"t`+strconv.Itoa(next)+`","text":"buy milk and eggs"}`
			next++
		case k%10 < 7:
			typ, payload = "todo/toggle", `{"id":"t`+strconv.Itoa(next-1-k%7)+`"}`
		case k%10 < 9:
			typ, payload = "todo/rename", `{"id":"t`+strconv.Itoa(next-1-k%5)+`","text":"buy bread"}`
		default:
			typ, payload = "todo/delete", `{"id":"t`+strconv.Itoa(next-1000)+`"}`
		}
		evs[k] = &plugins.Event{Seq: seq, Time: int64(seq) * 1e6, Producer: "bench", PSeq: seq, Type: typ, Payload: []byte(payload)}
	}
	return evs
}

// BenchmarkReduceTodos compares the todos reducer through Wasm with the same
// handlers run natively (the SDK's stub host), both over a MemStore. The
// ratio is the cost of the Wasm boundary plus running Go in wazero. Epoch
// re-instantiation (every abi.EpochSize events) is included in the Wasm run.
func BenchmarkReduceTodos(b *testing.B) {
	const n = 1 << 16
	evs := todoEvents(n)
	var wasmNs, nativeNs float64
	b.Run("wasm", func(b *testing.B) {
		reduceEvents(b, "todos", evs)
		wasmNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("native", func(b *testing.B) {
		h := nodb.NewHarness()
		b.ReportAllocs()
		b.ResetTimer()
		for k := 0; k < b.N; k++ {
			e := evs[k%n]
			if k%n == 0 && k > 0 {
				h.Store = nodb.NewMemStore()
			}
			if err := h.ReduceEvent(uint64(k+1), e.Time, e.Producer, e.PSeq, e.Type, e.Payload); err != nil {
				b.Fatal(err)
			}
		}
		nativeNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if wasmNs > 0 && nativeNs > 0 {
		b.Logf("todos: wasm %.0f ns/event, native %.0f ns/event, ratio %.2fx", wasmNs, nativeNs, wasmNs/nativeNs)
	}
}

// BenchmarkInstantiate measures creating a fresh todos guest (what an epoch
// boundary costs).
func BenchmarkInstantiate(b *testing.B) {
	r := newRuntime(b, plugins.Config{})
	m := compile(b, r, "todos")
	ctx := context.Background()
	b.ResetTimer()
	for k := 0; k < b.N; k++ {
		i, err := m.NewInstance(ctx, plugins.InstanceConfig{View: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		_ = i.Close(ctx)
	}
}

// BenchmarkReduceBoundary is the floor of a Go guest: the noop reducer (its
// handlers return at once) over the same events, so the figure is the
// boundary alone (frame write, export call, Go's wasmexport entry, the SDK's
// decoding and dispatch).
func BenchmarkReduceBoundary(b *testing.B) { reduceEvents(b, "noop", todoEvents(1<<16)) }

// reduceEvents runs b.N of evs (cycled, with increasing seqs) through a
// fresh instance of the fixture, on a fresh state at each cycle.
func reduceEvents(b *testing.B, fixture string, evs []*plugins.Event) {
	r := newRuntime(b, plugins.Config{})
	inst := instance(b, compile(b, r, fixture), plugins.InstanceConfig{View: "bench"})
	st := nodb.NewMemStore()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for k := 0; k < b.N; k++ {
		e := *evs[k%len(evs)]
		e.Seq = uint64(k + 1)
		if k%len(evs) == 0 && k > 0 {
			st = nodb.NewMemStore()
		}
		if err := inst.Reduce(ctx, &e, st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlumbing is the host's fixed cost with no guest language in the
// way: a WAT guest (testdata/plumb.wat) whose nodb_reduce makes n pairs of
// state_get and state_set of one path over a state that does nothing, for a
// todo payload. n=0 is the event boundary alone (frame, fuel, watchdog, the
// call into the guest); n=1 adds one get and one set (the shape of a
// toggle); n=8 shows the cost per host call.
func BenchmarkPlumbing(b *testing.B) {
	r := newRuntime(b, plugins.Config{})
	inst := instance(b, compile(b, r, "plumb"), plugins.InstanceConfig{View: "bench"})
	ctx := context.Background()
	for _, n := range []uint64{0, 1, 8} {
		b.Run("n="+strconv.FormatUint(n, 10), func(b *testing.B) {
			var st nullState
			e := plugins.Event{Producer: "p", Type: "todo/toggle", PSeq: n, Payload: []byte(`{"id":"abcd1234"}`)}
			for k := 0; b.Loop(); k++ {
				e.Seq = uint64(k%4000 + 1) // one epoch
				if err := inst.Reduce(ctx, &e, &st); err != nil {
					b.Fatal(err)
				}
			}
			if st.sets != uint64(b.N)*n {
				b.Fatalf("%d sets for %d events", st.sets, b.N)
			}
		})
	}
}

// nullState is a plugins.State that holds nothing: every path has the value
// false and writes are counted and dropped.
type nullState struct{ sets uint64 }

var cborFalse = []byte{0xf4}

// Get implements plugins.State: false, for every path.
func (*nullState) Get(string) ([]byte, bool, error) { return cborFalse, true, nil }

// Has implements plugins.State: every path has a value.
func (*nullState) Has(string) (bool, error) { return true, nil }

// Set implements plugins.State: counted and dropped.
func (s *nullState) Set(string, []byte) error { s.sets++; return nil }

// Delete implements plugins.State: nothing to do.
func (*nullState) Delete(string) error { return nil }
