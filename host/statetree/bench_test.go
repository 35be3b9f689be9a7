package statetree

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
)

// todos builds {"config":{...},"todos":{"todo-000000":{"id":…,"title":…,
// "done":false},…}} with n todos, as a view of a todo app would hold.
func todos(n int) Value {
	es := make([]entry, n)
	for i := range es {
		id := fmt.Sprintf("todo-%06d", i)
		t, _ := Map(map[string]Value{
			"id":    String(id),
			"title": String(fmt.Sprintf("buy item number %d", i)),
			"done":  Bool(false),
		})
		es[i] = entry{id, t}
	}
	cfg, _ := Map(map[string]Value{"theme": String("dark")})
	root, _ := Map(map[string]Value{"todos": mapFromEntries(es), "config": cfg})
	return root
}

func benchSet(b *testing.B, n int) {
	root := todos(n)
	paths := make([]Path, 1024)
	for i := range paths {
		paths[i] = MustPath(fmt.Sprintf("/todos/todo-%06d/done", (i*7919)%n))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var err error
		root, _, err = root.Set(paths[i%len(paths)], Bool(i&1024 == 0))
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetDepth3_10k(b *testing.B)  { benchSet(b, 10_000) }
func BenchmarkSetDepth3_100k(b *testing.B) { benchSet(b, 100_000) }

func BenchmarkTxSet10_10k(b *testing.B) {
	root := todos(10_000)
	paths := make([]Path, 10)
	for i := range paths {
		paths[i] = MustPath(fmt.Sprintf("/todos/todo-%06d/title", i*997))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tx := root.Begin()
		for _, p := range paths {
			if err := tx.Set(p, Int(int64(i))); err != nil {
				b.Fatal(err)
			}
		}
		root, _ = tx.Commit()
	}
}

func benchGet(b *testing.B, n int) {
	root := todos(n)
	paths := make([]Path, 1024)
	for i := range paths {
		paths[i] = MustPath(fmt.Sprintf("/todos/todo-%06d/done", (i*7919)%n))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := root.Get(paths[i%len(paths)]); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkGetDepth3_10k(b *testing.B)  { benchGet(b, 10_000) }
func BenchmarkGetDepth3_100k(b *testing.B) { benchGet(b, 100_000) }

// cpuNow returns the CPU time the process has used, garbage collection
// on other threads included.
func cpuNow() int64 {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return r.Utime.Nano() + r.Stime.Nano()
}

func BenchmarkHashAfterSet_100k(b *testing.B) {
	root := todos(100_000)
	root.Hash()
	p := MustPath("/todos/todo-050000/done")
	runtime.GC()
	b.ReportAllocs()
	cpu := cpuNow()
	for i := 0; b.Loop(); i++ {
		var err error
		root, _, err = root.Set(p, Bool(i&1 == 0))
		if err != nil {
			b.Fatal(err)
		}
		root.Hash()
	}
	b.ReportMetric(float64(cpuNow()-cpu)/float64(b.N), "cpu-ns/op")
}

// benchHash times Hash of the value setup(i) returns for the ith op,
// setup untimed. cpu-ns/op is the process's CPU time in Hash, garbage
// collection included.
func benchHash(b *testing.B, setup func(i int) Value) {
	b.ReportAllocs()
	var cpu int64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		v := setup(i)
		b.StartTimer()
		c := cpuNow()
		v.Hash()
		cpu += cpuNow() - c
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkHashFull_100k hashes a freshly built tree of 100k todos.
func BenchmarkHashFull_100k(b *testing.B) {
	benchHash(b, func(int) Value {
		root := todos(100_000)
		runtime.GC()
		return root
	})
}

// BenchmarkHashAfter1kSets_100k hashes a tree of 100k todos after 1000
// changes to scattered todos since it was last hashed, as the status of a
// view that a client polls while it catches up does.
func BenchmarkHashAfter1kSets_100k(b *testing.B) {
	root := todos(100_000)
	root.Hash()
	paths := make([]Path, 1000)
	for i := range paths {
		paths[i] = MustPath(fmt.Sprintf("/todos/todo-%06d/done", (i*7919)%100_000))
	}
	benchHash(b, func(i int) Value {
		tx := root.Begin()
		for _, p := range paths {
			if err := tx.Set(p, Bool(i&1 == 0)); err != nil {
				b.Fatal(err)
			}
		}
		root, _ = tx.Commit()
		return root
	})
}

func BenchmarkDiffOneChange_100k(b *testing.B) {
	a := todos(100_000)
	c, _, _ := a.Set(MustPath("/todos/todo-050000/done"), Bool(true))
	a.Hash()
	c.Hash()
	b.ReportAllocs()
	for b.Loop() {
		if len(Diff(a, c)) != 1 {
			b.Fatal("diff")
		}
	}
}

func BenchmarkEncodeCBOR_100k(b *testing.B) {
	root := todos(100_000)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(EncodeCBOR(root))
	}
	b.SetBytes(int64(n))
}

func BenchmarkDecodeCBOR_100k(b *testing.B) {
	data := EncodeCBOR(todos(100_000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCBOR(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFromJSON_100k(b *testing.B) {
	data := todos(100_000).AppendJSON(nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalJSON_100k(b *testing.B) {
	root := todos(100_000)
	b.ReportAllocs()
	for b.Loop() {
		root.AppendJSON(nil)
	}
}
