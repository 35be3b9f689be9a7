package view

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
)

var todosWasm struct {
	once sync.Once
	b    []byte
	err  error
}

// buildTodosWasm compiles the example todos reducer to WebAssembly once.
func buildTodosWasm(b *testing.B) []byte {
	todosWasm.once.Do(func() {
		todosWasm.b, todosWasm.err = gowasm.Module(context.Background(), "", "../../examples/todos/reducer")
	})
	if todosWasm.err != nil {
		b.Skipf("building the todos reducer: %v", todosWasm.err)
	}
	return todosWasm.b
}

// BenchmarkWasmEvent is the cost of one event through the todos Wasm
// reducer (host functions, guest, state tree; Begin to Commit) over a state
// of 10k todos with random 8-character ids, by event type, within one
// epoch (BenchmarkInstantiate in plugins measures an epoch boundary).
// clear reports ns/clear for todo/clear-completed with 5k of the todos done.
func BenchmarkWasmEvent(b *testing.B) { benchWasmEvent(b, buildTodosWasm(b)) }

// BenchmarkWasmEventC is BenchmarkWasmEvent with the todos reducer written
// in C (examples/todos/reducer-c, checked in as examples/todos/todos-c.wasm):
// the cost of an event through the host and the ABI when the guest has no
// heavy runtime.
func BenchmarkWasmEventC(b *testing.B) {
	wasm, err := os.ReadFile("../../examples/todos/todos-c.wasm")
	if err != nil {
		b.Fatal(err)
	}
	benchWasmEvent(b, wasm)
}

// benchWasmEvent runs the todos events of BenchmarkWasmEvent through wasm.
func benchWasmEvent(b *testing.B, wasm []byte) {
	ctx := context.Background()
	rt, err := plugins.NewRuntime(ctx, plugins.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	red, err := NewWasmReducer(ctx, mod, "todos", plugins.InstanceConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer red.Close()
	root := statetree.EmptyMap()
	seq := uint64(0)
	apply := func(typ, payload string) error {
		seq = seq%4000 + 1 // one epoch: no re-instantiation
		rec := eventlog.Record{Seq: seq, Time: int64(seq) * 1e6, Producer: "p", PSeq: seq, Type: typ, Payload: []byte(payload)}
		tx := root.Begin()
		if err := red.Reduce(ctx, &rec, tx); err != nil {
			return err
		}
		root, _ = tx.Commit()
		return nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	ids := make([]string, 10_000)
	for i := range ids {
		id := make([]byte, 8)
		for j := range id {
			id[j] = alpha[rng.IntN(len(alpha))]
		}
		ids[i] = string(id)
		if err := apply("todo/add", `{"id":"`+ids[i]+`","text":"buy item number `+strconv.Itoa(i)+` and some more words"}`); err != nil {
			b.Fatal(err)
		}
	}
	for _, typ := range []string{"toggle", "rename", "add+delete"} {
		b.Run(typ, func(b *testing.B) {
			b.ReportAllocs()
			for k := 0; b.Loop(); k++ {
				id := ids[(k*7919)%len(ids)]
				var err error
				switch typ {
				case "toggle":
					err = apply("todo/toggle", `{"id":"`+id+`"}`)
				case "rename":
					err = apply("todo/rename", `{"id":"`+id+`","text":"renamed to something of forty bytes"}`)
				default:
					if err = apply("todo/delete", `{"id":"`+id+`"}`); err == nil {
						err = apply("todo/add", `{"id":"`+id+`","text":"buy item number again and some words"}`)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("clear", func(b *testing.B) {
		const n = 10
		for range n {
			b.StopTimer()
			r0 := root
			for i := 0; i < len(ids); i += 2 {
				if err := apply("todo/toggle", `{"id":"`+ids[i]+`"}`); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			if err := apply("todo/clear-completed", `{}`); err != nil {
				b.Fatal(err)
			}
			root = r0
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/clear")
	})
}
