//go:build !wasip1

package main

import (
	"context"
	"strconv"
	"testing"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// calls counts calls of host functions and of the guest's runtime.mallocgc
// (every heap allocation of Go inside Wasm goes through it).
type calls struct {
	on      bool
	n       map[string]int
	sawMall bool
}

func (c *calls) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	name := def.Name()
	switch {
	case def.ModuleName() == "nodb_v1":
	case def.ModuleName() == "" && name == "runtime.mallocgc":
		c.sawMall = true
	default:
		return nil
	}
	return experimental.FunctionListenerFunc(func(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
		if c.on {
			c.n[name]++
		}
	})
}

// TestWasmCostPerEvent runs the reducer compiled to WebAssembly and checks
// what each event type costs inside the guest: its host calls (one read
// where a Has and a Get would make two) and its heap allocations, which
// are expensive there. It also checks that the Wasm reducer ends in the
// same state as the handlers run natively.
func TestWasmCostPerEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the reducer for wasip1")
	}
	wasm, err := gowasm.Module(context.Background(), "", ".")
	if err != nil {
		t.Fatal(err)
	}
	c := &calls{n: map[string]int{}}
	ctx := experimental.WithFunctionListenerFactory(context.Background(), c)
	rt, err := plugins.NewRuntime(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !c.sawMall {
		t.Fatal("the module has no runtime.mallocgc to count allocations with")
	}
	inst, err := mod.NewInstance(ctx, plugins.InstanceConfig{View: "todos"})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)

	st := nodb.NewMemStore()
	h := nodb.NewHarness()
	seq := uint64(0)
	reduce := func(typ, payload string) {
		t.Helper()
		seq++
		ev := &plugins.Event{Seq: seq, Time: int64(seq), Producer: "p", PSeq: seq, Type: typ, Payload: []byte(payload)}
		if err := inst.Reduce(ctx, ev, st); err != nil {
			t.Fatalf("wasm %s %s: %v", typ, payload, err)
		}
		if err := h.ReduceEvent(seq, int64(seq), "p", seq, typ, []byte(payload)); err != nil {
			t.Fatalf("native %s %s: %v", typ, payload, err)
		}
	}
	const n = 300
	id := func(i int) string { return "t" + strconv.Itoa(i) }
	for i := range n {
		reduce("todo/add", `{"id":"`+id(i)+`","text":"buy item number `+strconv.Itoa(i)+` and more"}`)
	}
	for _, c2 := range []struct {
		typ     string
		payload func(i int) string
		calls   map[string]int // host calls per event
		mallocs float64        // most heap allocations per event
	}{
		{"todo/toggle", func(i int) string { return `{"id":"` + id(i) + `"}` },
			map[string]int{"state_get": 1, "state_set": 1}, 0.05},
		{"todo/rename", func(i int) string { return `{"id":"` + id(i) + `","text":"renamed to something of forty bytes"}` },
			map[string]int{"state_has": 1, "state_set": 1}, 0.05},
		{"todo/delete", func(i int) string { return `{"id":"` + id(i) + `"}` },
			map[string]int{"state_delete": 1}, 0.05},
		{"todo/add", func(i int) string { return `{"id":"` + id(i) + `","text":"buy it again"}` },
			map[string]int{"state_has": 1, "state_set": 1}, 0.05},
	} {
		clear(c.n)
		c.on = true
		for i := range n {
			reduce(c2.typ, c2.payload(i))
		}
		c.on = false
		for fn, want := range c2.calls {
			if got := c.n[fn]; got != want*n {
				t.Errorf("%s: %d %s calls for %d events, want %d each", c2.typ, got, fn, n, want)
			}
		}
		for fn, got := range c.n {
			if _, ok := c2.calls[fn]; !ok && fn != "runtime.mallocgc" {
				t.Errorf("%s: %d unexpected %s calls", c2.typ, got, fn)
			}
		}
		if got := float64(c.n["runtime.mallocgc"]) / n; got > c2.mallocs {
			t.Errorf("%s: %.2f heap allocations per event in the guest, want at most %.2f", c2.typ, got, c2.mallocs)
		}
	}
	if got, want := st.JSON(), h.JSON(""); got != want {
		t.Errorf("wasm state %s\nnative state %s", got, want)
	}
}
