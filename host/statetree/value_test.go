package statetree

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func mustJSON(t testing.TB, s string) Value {
	t.Helper()
	v, err := FromJSON([]byte(s))
	if err != nil {
		t.Fatalf("FromJSON(%s): %v", s, err)
	}
	return v
}

func TestJSONCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`null`, `null`},
		{` {"b":1, "a":[true,false,null]} `, `{"a":[true,false,null],"b":1}`},
		{`1`, `1`},
		{`-0`, `0`},
		{`1.0`, `1.0`},
		{`-0.0`, `0.0`},
		{`1e2`, `100.0`},
		{`1.5E+2`, `150.0`},
		{`0.1`, `0.1`},
		{`1e21`, `1e+21`},
		{`1e-7`, `1e-7`},
		{`123456789.125`, `123456789.125`},
		{`9223372036854775807`, `9223372036854775807`},
		{`-9223372036854775808`, `-9223372036854775808`},
		{`9223372036854775808`, `9223372036854776000.0`},
		{`1e-400`, `0.0`},
		{`"a\"b\\c\/d\n\t\u0001\u00e9\ud83d\ude00"`, `"a\"b\\c/d\n\t\u0001é😀"`},
		{`{"":{"":[]},"é":{},"e":"\u2028"}`, `{"":{"":[]},"e":"` + "\u2028" + `","é":{}}`},
		{`{"b":1,"a":1,"ab":1,"":1,"aa":1}`, `{"":1,"a":1,"aa":1,"ab":1,"b":1}`},
	} {
		v := mustJSON(t, tc.in)
		if got := v.String(); got != tc.want {
			t.Errorf("FromJSON(%s) → %s, want %s", tc.in, got, tc.want)
		}
		back := mustJSON(t, tc.want)
		if !Equal(back, v) || back.String() != tc.want {
			t.Errorf("%s does not round-trip: %s", tc.want, back)
		}
	}
}

func TestJSONKinds(t *testing.T) {
	if k := mustJSON(t, `1`).Kind(); k != KindInt {
		t.Errorf("1 is a %s", k)
	}
	if k := mustJSON(t, `1.0`).Kind(); k != KindFloat {
		t.Errorf("1.0 is a %s", k)
	}
	if Equal(Int(1), Float(1)) || Int(1).Hash() == Float(1).Hash() {
		t.Error("Int(1) and Float(1) compare equal")
	}
	if Float(0).Hash() != mustJSON(t, `-0.0`).Hash() {
		t.Error("-0.0 and 0.0 differ")
	}
}

func TestJSONErrors(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	for _, tc := range []struct{ in, want string }{
		{``, "unexpected end"},
		{`{"a":1,"a":2}`, `duplicate key "a"`},
		{`{"x":{"__proto__":1}}`, `key "__proto__" is not allowed (it would pollute JavaScript clients)`},
		{`[{"constructor":{}}]`, `key "constructor" is not allowed`},
		{`{"prototype":1}`, `key "prototype" is not allowed`},
		{"\"\xff\"", "not valid UTF-8"},
		{"{\"\xc3\":1}", "not valid UTF-8"},
		{`"\ud800"`, "lone UTF-16 surrogate"},
		{`"\udc00\ud800"`, "lone UTF-16 surrogate"},
		{`"a` + "\n" + `"`, "control character"},
		{`01`, "leading zero"},
		{`1.`, "no digits after"},
		{`1e`, "no digits in the exponent"},
		{`1e400`, "out of range"},
		{`-`, "invalid number"},
		{`[1,]`, "unexpected character"},
		{`{"a" 1}`, "expected ':'"},
		{`{1:1}`, "expected a string key"},
		{`[1 2]`, "expected ',' or ']'"},
		{`tru`, "invalid literal"},
		{`NaN`, "unexpected character"},
		{`1 2`, "after the value"},
		{`"\x"`, "invalid escape"},
		{`"\u12"`, "invalid \\u escape"},
		{deep, "nesting deeper than 512"},
	} {
		_, err := FromJSON([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "statetree: ") {
			t.Errorf("FromJSON(%.40q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := FromJSON([]byte(ok)); err != nil {
		t.Errorf("nesting of exactly MaxDepth: %v", err)
	}
}

func TestForbiddenKeys(t *testing.T) {
	const msg = `statetree: key "__proto__" is not allowed (it would pollute JavaScript clients)`
	_, err := ParsePath("/a/__proto__/b")
	if err == nil || err.Error() != msg || !errors.Is(err, ErrForbiddenKey) {
		t.Errorf("ParsePath: %v", err)
	}
	root := mustJSON(t, `{"a":{}}`)
	for _, p := range []Path{{"__proto__"}, {"a", "constructor"}, {"a", "prototype", "x"}} {
		if _, _, err := root.Set(p, Int(1)); !errors.Is(err, ErrForbiddenKey) {
			t.Errorf("Set(%q): %v", p, err)
		}
		if _, _, err := root.Delete(p); !errors.Is(err, ErrForbiddenKey) {
			t.Errorf("Delete(%q): %v", p, err)
		}
	}
	if _, err := Map(map[string]Value{"constructor": Null()}); !errors.Is(err, ErrForbiddenKey) {
		t.Errorf("Map: %v", err)
	}
	if _, err := FromGo(map[string]any{"a": []any{map[string]any{"__proto__": 1}}}); !errors.Is(err, ErrForbiddenKey) {
		t.Errorf("FromGo: %v", err)
	}
	if _, err := Apply(root, []Op{{Op: OpAdd, Path: "/__proto__", Value: Int(1)}}); !errors.Is(err, ErrForbiddenKey) {
		t.Errorf("Apply: %v", err)
	}
	var op Op
	if err := op.UnmarshalJSON([]byte(`{"op":"add","path":"/a","value":{"b":{"__proto__":{}}}}`)); !errors.Is(err, ErrForbiddenKey) && (err == nil || !strings.Contains(err.Error(), "__proto__")) {
		t.Errorf("Op.UnmarshalJSON: %v", err)
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		in   string
		toks []string
	}{
		{"", nil},
		{"/", []string{""}},
		{"/a~1b/~0c/~01", []string{"a/b", "~c", "~1"}},
		{"/todos/a1/done", []string{"todos", "a1", "done"}},
	} {
		p, err := ParsePath(tc.in)
		if err != nil || fmt.Sprint([]string(p)) != fmt.Sprint(tc.toks) {
			t.Errorf("ParsePath(%q) = %q, %v", tc.in, p, err)
		}
		if p.String() != tc.in {
			t.Errorf("%q.String() = %q", p, p.String())
		}
	}
	for _, bad := range []string{"a", "/~", "/~2", "/a~"} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) succeeded", bad)
		}
	}
}

func TestSetOps(t *testing.T) {
	for _, tc := range []struct {
		doc, path, val, ops, want string
	}{
		{`{}`, `/a`, `1`, `[{"op":"add","path":"/a","value":1}]`, `{"a":1}`},
		{`{"a":1}`, `/a`, `2`, `[{"op":"replace","path":"/a","value":2}]`, `{"a":2}`},
		{`{"a":1}`, `/a`, `1`, `[]`, `{"a":1}`},
		{`{"a":1}`, `/a`, `1.0`, `[{"op":"replace","path":"/a","value":1.0}]`, `{"a":1.0}`},
		{`{"a":{"b":[1]}}`, `/a`, `{"b":[1]}`, `[]`, `{"a":{"b":[1]}}`},
		{`{}`, `/a/b/c`, `true`, `[{"op":"add","path":"/a","value":{"b":{"c":true}}}]`, `{"a":{"b":{"c":true}}}`},
		{`{"a":{}}`, `/a/b/c`, `1`, `[{"op":"add","path":"/a/b","value":{"c":1}}]`, `{"a":{"b":{"c":1}}}`},
		{`{"a":null}`, `/a/b`, `1`, `[{"op":"replace","path":"/a","value":{"b":1}}]`, `{"a":{"b":1}}`},
		{`null`, `/a/b`, `1`, `[{"op":"replace","path":"","value":{"a":{"b":1}}}]`, `{"a":{"b":1}}`},
		{`{"a":1}`, ``, `[]`, `[{"op":"replace","path":"","value":[]}]`, `[]`},
		{`{"l":[1,2]}`, `/l/1`, `3`, `[{"op":"replace","path":"/l/1","value":3}]`, `{"l":[1,3]}`},
		{`{"l":[1,2]}`, `/l/2`, `3`, `[{"op":"add","path":"/l/2","value":3}]`, `{"l":[1,2,3]}`},
		{`{"l":[1,2]}`, `/l/-`, `3`, `[{"op":"add","path":"/l/2","value":3}]`, `{"l":[1,2,3]}`},
		{`{"l":[null]}`, `/l/0/x`, `3`, `[{"op":"replace","path":"/l/0","value":{"x":3}}]`, `{"l":[{"x":3}]}`},
		{`{"a~b":{"c/d":1}}`, `/a~0b/c~1d`, `2`, `[{"op":"replace","path":"/a~0b/c~1d","value":2}]`, `{"a~b":{"c/d":2}}`},
	} {
		root := mustJSON(t, tc.doc)
		nr, ops, err := root.Set(MustPath(tc.path), mustJSON(t, tc.val))
		if err != nil {
			t.Errorf("%s: Set(%s, %s): %v", tc.doc, tc.path, tc.val, err)
			continue
		}
		if got := opsJSON(ops); got != tc.ops {
			t.Errorf("%s: Set(%s, %s) ops %s, want %s", tc.doc, tc.path, tc.val, got, tc.ops)
		}
		if nr.String() != tc.want {
			t.Errorf("%s: Set(%s, %s) = %s, want %s", tc.doc, tc.path, tc.val, nr, tc.want)
		}
		if root.String() != mustJSON(t, tc.doc).String() {
			t.Errorf("%s: Set modified the old root: %s", tc.doc, root)
		}
	}
	for _, tc := range []struct{ doc, path, want string }{
		{`{"a":"s"}`, `/a/b`, `"/a" is a string, not a map or array`},
		{`{"a":1}`, `/a/b`, `"/a" is an int, not a map or array`},
		{`{"l":[1]}`, `/l/5`, `no element "5"`},
		{`{"l":[1]}`, `/l/01`, `no element "01"`},
		{`{"l":[1]}`, `/l/1/x`, `no element "1"`},
		{`{"l":[1]}`, `/l/x`, `no element "x"`},
	} {
		_, _, err := mustJSON(t, tc.doc).Set(MustPath(tc.path), Int(1))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Set(%s) error %v, want %q", tc.doc, tc.path, err, tc.want)
		}
	}
}

func TestDeleteInsert(t *testing.T) {
	root := mustJSON(t, `{"a":{"b":1},"l":[1,2,3]}`)
	tx := root.Begin()
	for _, p := range []string{"/x", "/a/x", "/a/b/c", "/l/3", "/l/-", "/l/x", "/l/0/y"} {
		if err := tx.Delete(MustPath(p)); err != nil {
			t.Errorf("Delete(%s): %v", p, err)
		}
	}
	if len(tx.Ops()) != 0 {
		t.Errorf("deleting missing paths recorded %s", opsJSON(tx.Ops()))
	}
	if err := tx.Delete(Path{}); err == nil {
		t.Error("deleting the root succeeded")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tx.Delete(MustPath("/a/b")))
	must(tx.Delete(MustPath("/l/0")))
	must(tx.Insert(MustPath("/l/1"), String("x")))
	must(tx.Insert(MustPath("/l/-"), String("y")))
	must(tx.Set(MustPath("/a/n"), Int(7)))
	if v, ok := tx.Get(MustPath("/a/n")); !ok || v.Int() != 7 {
		t.Errorf("Get in tx = %s, %v", v, ok)
	}
	if err := tx.Insert(MustPath("/a/z"), Int(1)); err == nil {
		t.Error("Insert into a map succeeded")
	}
	if err := tx.Insert(MustPath("/l/9"), Int(1)); err == nil {
		t.Error("Insert out of range succeeded")
	}
	nr, ops := tx.Commit()
	const wantOps = `[{"op":"remove","path":"/a/b"},{"op":"remove","path":"/l/0"},{"op":"add","path":"/l/1","value":"x"},{"op":"add","path":"/l/3","value":"y"},{"op":"add","path":"/a/n","value":7}]`
	if got := opsJSON(ops); got != wantOps {
		t.Errorf("ops %s\nwant %s", got, wantOps)
	}
	if want := `{"a":{"n":7},"l":[2,"x",3,"y"]}`; nr.String() != want {
		t.Errorf("root %s, want %s", nr, want)
	}
	if got, err := Apply(root, ops); err != nil || !Equal(got, nr) {
		t.Errorf("Apply = %s, %v", got, err)
	}
}

func TestApplyStrict(t *testing.T) {
	root := mustJSON(t, `{"a":{"b":1},"l":[1]}`)
	for _, op := range []string{
		`{"op":"remove","path":"/x"}`,
		`{"op":"replace","path":"/x","value":1}`,
		`{"op":"add","path":"/x/y","value":1}`,
		`{"op":"add","path":"/l/2","value":1}`,
		`{"op":"remove","path":"/l/1"}`,
		`{"op":"remove","path":""}`,
		`{"op":"add","path":"/a/b/c","value":1}`,
	} {
		var o Op
		if err := o.UnmarshalJSON([]byte(op)); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if _, err := Apply(root, []Op{o}); err == nil {
			t.Errorf("Apply(%s) succeeded", op)
		}
	}
	for _, op := range []string{`{"op":"move","path":"/a","from":"/b"}`, `{"op":"add","path":"/a"}`, `{"path":"/a"}`, `[]`} {
		var o Op
		if err := o.UnmarshalJSON([]byte(op)); err == nil {
			t.Errorf("UnmarshalJSON(%s) succeeded", op)
		}
	}
}

func TestStructuralSharing(t *testing.T) {
	root := todos(1000)
	p := MustPath("/todos/todo-000500/done")
	nr, _, err := root.Set(p, Bool(true))
	if err != nil {
		t.Fatal(err)
	}
	oldTodos, _ := root.Lookup("todos")
	newTodos, _ := nr.Lookup("todos")
	if oldTodos.node() == newTodos.node() {
		t.Fatal("the changed map was not copied")
	}
	other := MustPath("/todos/todo-000501")
	a, _ := root.Get(other)
	b, _ := nr.Get(other)
	if a.node() != b.node() {
		t.Error("an untouched todo was copied")
	}
	oc, _ := root.Lookup("config")
	nc, _ := nr.Lookup("config")
	if oc.node() != nc.node() {
		t.Error("an untouched sibling map was copied")
	}
	shared, total := 0, 0
	var walk func(x, y *tnode)
	walk = func(x, y *tnode) {
		total++
		if x == y {
			shared++
			return
		}
		for i := range x.kids() {
			walk(x.kids()[i], y.kids()[i])
		}
	}
	walk(oldTodos.node(), newTodos.node())
	if copied := total - shared; copied > 8 {
		t.Errorf("a Set copied %d trie nodes of the 1000-entry map", copied)
	}
	if v, _ := root.Get(p); v.Bool() {
		t.Error("the old root changed")
	}
}

func TestTrieCanonical(t *testing.T) {
	keys := []string{"", "a", "ab", "abc", "abd", "b", "todo-1", "todo-10", "todo-2", "é", "\x00", "\xff"[:0] + "z"}
	var want Hash
	for i := range 50 {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		perm := rng.Perm(len(keys))
		v := EmptyMap()
		for _, j := range perm {
			var err error
			if v, _, err = v.Set(Path{keys[j]}, Int(int64(j))); err != nil {
				t.Fatal(err)
			}
		}
		// Add and remove noise keys in between.
		for _, k := range []string{"ab0", "a", "zz", "todo-"} {
			before := v
			v, _, _ = v.Set(Path{k + "!"}, Null())
			v, _, _ = v.Delete(Path{k + "!"})
			if !sameShape(v.node(), before.node()) {
				t.Fatalf("add+delete of %q changed the shape", k)
			}
		}
		if i == 0 {
			want = v.Hash()
		} else if v.Hash() != want {
			t.Fatalf("insertion order %v gives a different hash", perm)
		}
		if !sameShape(v.node(), buildTrie(v.node().entries(nil))) {
			t.Fatalf("order %v: shape differs from the bulk-built trie", perm)
		}
	}
}

// TestHashGolden pins the hash encoding: a change to it breaks snapshot and
// hot-swap comparisons between hosts running different builds.
func TestHashGolden(t *testing.T) {
	v := mustJSON(t, `{"todos":{"a1":{"done":false,"title":"milk","n":1,"f":1.5},"a2":null},"list":[1,"x",true,[]],"long":"`+strings.Repeat("x", 100)+`","":{}}`)
	const want = "2032f7569066a1f0c5c10ff6e44220fd948143c240e55ea9abef0a859307e978"
	if got := v.Hash().String(); got != want {
		t.Errorf("hash = %s, want %s", got, want)
	}
	for _, tc := range []struct{ v Value }{{Null()}, {Int(0)}, {Float(0)}, {String("")}, {Array()}, {EmptyMap()}, {Bool(false)}} {
		for _, other := range []Value{Null(), Int(0), Float(0), String(""), Array(), EmptyMap(), Bool(false)} {
			if (tc.v.Hash() == other.Hash()) != (tc.v.Kind() == other.Kind()) {
				t.Errorf("%s and %s: hashes collide or differ wrongly", tc.v, other)
			}
		}
	}
}

func TestConcurrentHash(t *testing.T) {
	root := todos(2000)
	var wg sync.WaitGroup
	hs := make([]Hash, 4)
	for i := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs[i] = root.Hash()
		}()
	}
	wg.Wait()
	for _, h := range hs {
		if h != hs[0] {
			t.Fatal("concurrent hashing disagrees")
		}
	}
	if fresh := mustJSON(t, root.String()); fresh.Hash() != hs[0] {
		t.Fatal("hash differs from a freshly parsed copy")
	}
}

func TestDepthLimit(t *testing.T) {
	p := make(Path, MaxDepth)
	for i := range p {
		p[i] = "k"
	}
	v, _, err := EmptyMap().Set(p, Int(1))
	if err != nil || v.depth() != MaxDepth {
		t.Fatalf("depth %d: %v", v.depth(), err)
	}
	if _, _, err := v.Set(p, EmptyMap()); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth %d: %v", MaxDepth+1, err)
	}
	if _, err := Apply(v, []Op{{Op: OpReplace, Path: p.String(), Value: Array()}}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("Apply to depth %d: %v", MaxDepth+1, err)
	}
	if _, err := DecodeCBOR(EncodeCBOR(v)); err != nil {
		t.Fatalf("deepest tree does not round-trip through CBOR: %v", err)
	}
	if _, err := FromJSON(v.AppendJSON(nil)); err != nil {
		t.Fatalf("deepest tree does not round-trip through JSON: %v", err)
	}
}

func TestFromGo(t *testing.T) {
	v, err := FromGo(map[string]any{"i": 1, "u": uint8(2), "f": 1.0, "s": "x", "l": []any{nil, true}, "v": Int(3)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"f":1.0,"i":1,"l":[null,true],"s":"x","u":2,"v":3}`; v.String() != want {
		t.Errorf("FromGo = %s, want %s", v, want)
	}
	for _, bad := range []any{uint64(1 << 63), struct{}{}, "\xff", map[string]any{"a": []int{1}}} {
		if _, err := FromGo(bad); err == nil {
			t.Errorf("FromGo(%#v) succeeded", bad)
		}
	}
	var cyc []any
	cyc = append(cyc, nil)
	cyc[0] = cyc
	if _, err := FromGo(cyc); !errors.Is(err, ErrTooDeep) {
		t.Errorf("FromGo of a cycle: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	v := mustJSON(t, `{"b":[1,2.5,"s"],"a":true}`)
	l, _ := v.Lookup("b")
	if v.Len() != 2 || l.Len() != 3 || l.Index(0).Int() != 1 || l.Index(1).Float() != 2.5 || l.Index(2).Str() != "s" || !l.Index(9).IsNull() {
		t.Errorf("accessors on %s", v)
	}
	if got, _ := v.Get(MustPath("/a")); !got.Bool() {
		t.Error("Get /a")
	}
	if _, ok := v.Get(MustPath("/b/3")); ok {
		t.Error("Get /b/3 found something")
	}
	if fmt.Sprint(v.Keys()) != "[a b]" {
		t.Errorf("Keys = %v", v.Keys())
	}
	n := 0
	v.Range(func(string, Value) bool { n++; return false })
	if n != 1 {
		t.Error("Range did not stop")
	}
}
