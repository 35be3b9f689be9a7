package statetree

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// randomTodos builds {"todos":{ID:{"text":…,"done":…}}} with n random
// 8-character ids, the shape of the replay benchmark's view.
func randomTodos(n int) (Value, []string) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, n)
	m := make(map[string]Value, n)
	for i := range ids {
		ids[i] = randomID(rng)
		t, _ := Map(map[string]Value{"text": String(fmt.Sprintf("buy item number %d and more", i)), "done": Bool(i%2 == 0)})
		m[ids[i]] = t
	}
	todos, _ := Map(m)
	root, _ := Map(map[string]Value{"todos": todos})
	return root, ids
}

// randomID returns an 8-character id of lowercase letters and digits.
func randomID(rng *rand.Rand) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	for j := range b {
		b[j] = alpha[rng.IntN(len(alpha))]
	}
	return string(b)
}

// BenchmarkEventToggle is one replay event: a Tx that reads a todo and sets
// its done flag, then commits.
func BenchmarkEventToggle(b *testing.B) {
	root, ids := randomTodos(10_000)
	paths := make([]Path, len(ids))
	done := make([]Path, len(ids))
	for i, id := range ids {
		paths[i] = Path{"todos", id}
		done[i] = Path{"todos", id, "done"}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := (i * 7919) % len(ids)
		tx := root.Begin()
		v, _ := tx.Get(done[k])
		if err := tx.Set(done[k], Bool(!v.Bool())); err != nil {
			b.Fatal(err)
		}
		root, _ = tx.Commit()
	}
}

// BenchmarkEventAddDelete adds a todo and deletes another, one event each.
func BenchmarkEventAddDelete(b *testing.B) {
	root, ids := randomTodos(10_000)
	todo, _ := Map(map[string]Value{"text": String("a new todo of some forty bytes of text"), "done": Bool(false)})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := (i * 7919) % len(ids)
		p := Path{"todos", ids[k]}
		tx := root.Begin()
		if err := tx.Delete(p); err != nil {
			b.Fatal(err)
		}
		root, _ = tx.Commit()
		tx = root.Begin()
		if err := tx.Set(p, todo); err != nil {
			b.Fatal(err)
		}
		root, _ = tx.Commit()
	}
}

// BenchmarkTxClearCompleted deletes the done half of 10k todos in one Tx,
// as todo/clear-completed does.
func BenchmarkTxClearCompleted(b *testing.B) {
	root, ids := randomTodos(10_000)
	var done []Path
	for i, id := range ids {
		if i%2 == 0 {
			done = append(done, Path{"todos", id})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		tx := root.Begin()
		for _, p := range done {
			if err := tx.Delete(p); err != nil {
				b.Fatal(err)
			}
		}
		tx.Commit()
	}
}

// BenchmarkDecodeTodo decodes one todo as a reducer's state_set sends it.
func BenchmarkDecodeTodo(b *testing.B) {
	todo, _ := Map(map[string]Value{"text": String("a new todo of some forty bytes of text"), "done": Bool(false)})
	data := EncodeCBOR(todo)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCBOR(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSetPath parses a pointer as the host functions get it.
func BenchmarkParseSetPath(b *testing.B) {
	var p Path
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if p, err = ParsePath("/todos/k3j9x0qa/done"); err != nil || len(p) != 3 {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPath parses a pointer into a reused Path, as host/view's
// TxState does.
func BenchmarkAppendPath(b *testing.B) {
	var p Path
	for b.Loop() {
		var err error
		if p, err = AppendPath(p[:0], "/todos/k3j9x0qa/done"); err != nil || len(p) != 3 {
			b.Fatal(err)
		}
	}
}

// BenchmarkToggleShape measures what a todo's own small map costs a
// replay: a toggle over 10k todos, 256 events to a Tx, with each todo
// stored as today's {"text","done"} map (nested: read and set
// /todos/ID/done) and, for comparison, as one string (flat: read and
// replace /todos/ID). The difference is the price of the inner map's
// level (its root and leaf nodes walked and copied), the bound on what a
// flatter representation of small maps could save.
func BenchmarkToggleShape(b *testing.B) {
	run := func(b *testing.B, root Value, ids []string, event func(tx *Tx, id string)) {
		rng := rand.New(rand.NewPCG(5, 6))
		tx := root.Begin()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			event(tx, ids[rng.IntN(len(ids))])
			if i%256 == 255 {
				root, _ = tx.Commit()
				tx.Reset(root)
			}
		}
	}
	b.Run("nested", func(b *testing.B) {
		root, ids := randomTodos(10_000)
		run(b, root, ids, func(tx *Tx, id string) {
			p := Path{"todos", id, "done"}
			v, _ := tx.Peek(p)
			if err := tx.Set(p, Bool(!v.Bool())); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("flat", func(b *testing.B) {
		const open, done = "buy item number 42 and more", "buy item number 42 and more (done)"
		rng := rand.New(rand.NewPCG(1, 2))
		ids := make([]string, 10_000)
		m := make(map[string]Value, len(ids))
		for i := range ids {
			ids[i] = randomID(rng)
			m[ids[i]] = String(open)
		}
		todos, _ := Map(m)
		root, _ := Map(map[string]Value{"todos": todos})
		run(b, root, ids, func(tx *Tx, id string) {
			p := Path{"todos", id}
			v, _ := tx.Peek(p)
			next := done
			if v.Str() == done {
				next = open
			}
			if err := tx.Set(p, String(next)); err != nil {
				b.Fatal(err)
			}
		})
	})
}
