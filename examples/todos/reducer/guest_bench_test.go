//go:build !wasip1

package main

import (
	"context"
	"math/rand/v2"
	"sort"
	"strconv"
	"syscall"
	"testing"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
)

// fixedStore answers every read with a fixed value and accepts every
// write, so that the host side of an event costs next to nothing and a
// benchmark over it measures the guest: the SDK and the handlers compiled
// to WebAssembly (and the boundary crossings).
type fixedStore struct {
	todos   []byte // the value at /todos
	deletes int
}

func (f *fixedStore) Get(path string) ([]byte, bool, error) {
	if path == "/todos" {
		return f.todos, true, nil
	}
	return []byte{abi.CBORFalse}, true, nil
}

// Has answers false for ids ending in 'x' (the benchmark's new todos).
func (f *fixedStore) Has(path string) (bool, error) { return path[len(path)-1] != 'x', nil }
func (f *fixedStore) Set(string, []byte) error      { return nil }
func (f *fixedStore) Delete(string) error           { f.deletes++; return nil }

// BenchmarkWasmGuest is the cost of the todos reducer's guest, by event
// type: the Go SDK and handlers compiled to WebAssembly, over a fixedStore
// whose /todos holds 10k todos with 8-byte ids, half of them done (clear
// iterates them all and deletes 5k). Compare it with
// host/view's BenchmarkWasmEvent, which includes the state tree. cpu-ns/op
// is the process's CPU time per event (garbage collection included), which
// another busy process on the machine disturbs less than ns/op.
func BenchmarkWasmGuest(b *testing.B) {
	wasm, err := gowasm.Module(context.Background(), "", ".")
	if err != nil {
		b.Fatal(err)
	}
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
	inst, err := mod.NewInstance(ctx, plugins.InstanceConfig{View: "todos"})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	ids := make([]string, 10_000)
	for i := range ids {
		id := make([]byte, 8)
		for j := range id {
			id[j] = alpha[rng.IntN(len(alpha))]
		}
		ids[i] = string(id)
	}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted) // the host's order, all ids being 8 bytes
	enc := abi.AppendHead(nil, abi.MajorMap, uint64(len(sorted)))
	for i, id := range sorted {
		enc = abi.AppendString(enc, id)
		enc = abi.AppendHead(enc, abi.MajorMap, 2)
		enc = abi.AppendBool(abi.AppendString(enc, "done"), i%2 == 0)
		enc = abi.AppendString(enc, "text")
		enc = abi.AppendString(enc, "buy item number "+strconv.Itoa(i)+" and some more words")
	}
	st := &fixedStore{todos: enc}
	seq := uint64(0)
	run := func(b *testing.B, typ string, payload func(k int) string) {
		pl := make([][]byte, 1024)
		for k := range pl {
			pl[k] = []byte(payload(k))
		}
		var r0, r1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		for k := 0; b.Loop(); k++ {
			seq = seq%4000 + 1 // one epoch: no re-instantiation
			ev := &plugins.Event{Seq: seq, Time: int64(seq) * 1e6, Producer: "p", PSeq: seq, Type: typ, Payload: pl[k%len(pl)]}
			if err := inst.Reduce(ctx, ev, st); err != nil {
				b.Fatal(err)
			}
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}
	id := func(k int) string { return ids[(k*7919)%len(ids)] }
	b.Run("add", func(b *testing.B) {
		run(b, "todo/add", func(k int) string {
			return `{"id":"` + id(k) + `x","text":"buy item number ` + strconv.Itoa(k) + ` and some more words"}`
		})
	})
	b.Run("toggle", func(b *testing.B) {
		run(b, "todo/toggle", func(k int) string { return `{"id":"` + id(k) + `"}` })
	})
	b.Run("rename", func(b *testing.B) {
		run(b, "todo/rename", func(k int) string {
			return `{"id":"` + id(k) + `","text":"renamed to something of forty bytes"}`
		})
	})
	b.Run("delete", func(b *testing.B) {
		run(b, "todo/delete", func(k int) string { return `{"id":"` + id(k) + `"}` })
	})
	b.Run("clear", func(b *testing.B) {
		st.deletes = 0
		run(b, "todo/clear-completed", func(int) string { return `{}` })
		if st.deletes != b.N*len(ids)/2 {
			b.Fatalf("%d deletes in %d clears", st.deletes, b.N)
		}
	})
}
