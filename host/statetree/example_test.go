package statetree_test

import (
	"fmt"

	"github.com/nodb-dev/nodb/host/statetree"
)

// A reducer's changes for one event, recorded as a JSON Patch.
func Example() {
	root, _ := statetree.FromJSON([]byte(`{"todos":{}}`))

	tx := root.Begin()
	_ = tx.Set(statetree.MustPath("/todos/a1/title"), statetree.String("buy milk"))
	_ = tx.Set(statetree.MustPath("/todos/a1/done"), statetree.Bool(false))
	_ = tx.Set(statetree.MustPath("/count"), statetree.Int(1))
	next, ops := tx.Commit()

	for _, op := range ops {
		b, _ := op.MarshalJSON()
		fmt.Println(string(b))
	}
	fmt.Println(next)
	fmt.Println(root) // unchanged

	// Output:
	// {"op":"add","path":"/todos/a1","value":{"title":"buy milk"}}
	// {"op":"add","path":"/todos/a1/done","value":false}
	// {"op":"add","path":"/count","value":1}
	// {"count":1,"todos":{"a1":{"done":false,"title":"buy milk"}}}
	// {"todos":{}}
}

// Diff finds what changed between two roots, walking only the subtrees
// whose hashes differ.
func ExampleDiffPaths() {
	a, _ := statetree.FromJSON([]byte(`{"todos":{"a1":{"done":false},"a2":{"done":false}}}`))
	b, _, _ := a.Set(statetree.MustPath("/todos/a2/done"), statetree.Bool(true))

	fmt.Println(a.Hash() == b.Hash())
	for _, c := range statetree.DiffPaths(a, b, 10) {
		fmt.Println(c.Op, c.Path, c.Old, "→", c.New)
	}
	// Output:
	// false
	// replace /todos/a2/done false → true
}
