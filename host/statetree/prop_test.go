package statetree

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Keys chosen to exercise the trie (shared prefixes, one key a prefix of
// another, the empty key, multi-byte UTF-8) and pointer escaping.
var propKeys = []string{"", "a", "ab", "abc", "abd", "b", "ba", "a/b", "~", "~1", "é", "éa", "0", "1", "-"}

var propTokens = append(slices.Clone(propKeys), "2", "3", "10")

func genValue(depth int) *rapid.Generator[Value] {
	return rapid.Custom(func(t *rapid.T) Value {
		max := 8
		if depth <= 0 {
			max = 5
		}
		switch rapid.IntRange(0, max).Draw(t, "kind") {
		case 0:
			return Null()
		case 1:
			return Bool(rapid.Bool().Draw(t, "b"))
		case 2:
			return Int(rapid.SampledFrom([]int64{0, 1, -1, 42, 1 << 53, -1 << 63, 1<<63 - 1}).Draw(t, "i"))
		case 3:
			return Float(rapid.SampledFrom([]float64{0, 1, -1, 0.5, 1e21, 1e-7, 3.141592653589793, 1e300, 65504, 5.960464477539063e-08}).Draw(t, "f"))
		case 4:
			return String(rapid.SampledFrom([]string{"", "x", "héllo", "tab\t\"q\"", strings.Repeat("long", 20), "\u2028"}).Draw(t, "s"))
		case 5:
			return Int(rapid.Int64Range(-3, 3).Draw(t, "small"))
		case 6, 7:
			n := rapid.IntRange(0, 4).Draw(t, "n")
			m := map[string]Value{}
			for range n {
				m[rapid.SampledFrom(propKeys).Draw(t, "k")] = genValue(depth-1).Draw(t, "v")
			}
			v, err := Map(m)
			if err != nil {
				t.Fatal(err)
			}
			return v
		default:
			n := rapid.IntRange(0, 3).Draw(t, "n")
			es := make([]Value, n)
			for i := range es {
				es[i] = genValue(depth-1).Draw(t, "e")
			}
			return Array(es...)
		}
	})
}

func genPath() *rapid.Generator[Path] {
	return rapid.Custom(func(t *rapid.T) Path {
		n := rapid.IntRange(0, 4).Draw(t, "len")
		p := make(Path, n)
		for i := range p {
			p[i] = rapid.SampledFrom(propTokens).Draw(t, "tok")
		}
		return p
	})
}

// canonJSON marshals v; it is the reference for value equality.
func canonJSON(v Value) string { return string(v.AppendJSON(nil)) }

func TestPropertyOps(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		root := genValue(2).Draw(t, "root")
		if rapid.Bool().Draw(t, "mapRoot") {
			root = EmptyMap()
		}
		history := []Value{root}
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for range steps {
			old := root
			oldGo := old.ToGo()
			p := genPath().Draw(t, "path")
			tx := root.Begin()
			var err error
			action := rapid.IntRange(0, 9).Draw(t, "action")
			x := genValue(2).Draw(t, "x")
			switch {
			case action < 6:
				err = tx.Set(p, x)
			case action < 8:
				err = tx.Delete(p)
			default:
				err = tx.Insert(p, x)
			}
			got, ok := tx.Get(p)
			if len(p) > 0 && p[len(p)-1] == "-" {
				if parent, _ := tx.Get(p[:len(p)-1]); parent.Kind() == KindArray {
					got, ok = parent.Index(parent.Len()-1), parent.Len() > 0
				}
			}
			if err == nil && action < 6 && (!ok || !Equal(got, x)) {
				t.Fatalf("Get in tx after Set(%s, %s) = %s, %v", p, x, got, ok)
			}
			root, ops := tx.Commit()
			if err != nil {
				if !Equal(root, old) || len(ops) != 0 {
					t.Fatalf("failed change %s modified the root or recorded ops: %v", p, ops)
				}
				continue
			}
			if action >= 6 && action < 8 {
				if len(p) > 0 {
					if _, ok := root.Get(p); ok && len(ops) > 0 && !isArrayElem(old, p) {
						t.Fatalf("Delete(%s) left the path present", p)
					}
				}
			}
			if len(ops) > 1 {
				t.Fatalf("one change recorded %d ops: %v", len(ops), ops)
			}
			if (len(ops) == 0) != Equal(old, root) {
				t.Fatalf("ops %v but equal=%v", ops, Equal(old, root))
			}
			checkTree(t, root)
			want := canonJSON(root)
			// Our Apply.
			applied, err := Apply(old, ops)
			if err != nil {
				t.Fatalf("Apply(%s, %s): %v", canonJSON(old), opsJSON(ops), err)
			}
			if canonJSON(applied) != want {
				t.Fatalf("Apply gave %s, want %s", canonJSON(applied), want)
			}
			// The independent reference implementation, through JSON text.
			ref, err := refApply(oldGo, roundTripOps(t, ops))
			if err != nil {
				t.Fatalf("refApply(%s, %s): %v", canonJSON(old), opsJSON(ops), err)
			}
			if !reflect.DeepEqual(ref, root.ToGo()) {
				t.Fatalf("refApply(%s, %s) = %#v, want %s", canonJSON(old), opsJSON(ops), ref, want)
			}
			history = append(history, root)
		}
		// Pairs of states: hashes, Diff, DiffPaths.
		for range 10 {
			a := rapid.SampledFrom(history).Draw(t, "a")
			b := rapid.SampledFrom(history).Draw(t, "b")
			checkPair(t, a, b)
		}
		checkPair(t, history[0], root)
		checkCodecs(t, root)
	})
}

func isArrayElem(root Value, p Path) bool {
	parent, _ := root.Get(p[:len(p)-1])
	return parent.Kind() == KindArray
}

func checkPair(t *rapid.T, a, b Value) {
	ja, jb := canonJSON(a), canonJSON(b)
	if (a.Hash() == b.Hash()) != (ja == jb) {
		t.Fatalf("hash equality %v but JSON equality %v: %s vs %s", a.Hash() == b.Hash(), ja == jb, ja, jb)
	}
	if Equal(a, b) != (ja == jb) {
		t.Fatalf("Equal %v but JSON equality %v: %s vs %s", Equal(a, b), ja == jb, ja, jb)
	}
	ops := Diff(a, b)
	got, err := Apply(a, ops)
	if err != nil {
		t.Fatalf("Apply(%s, Diff → %s): %v", ja, opsJSON(ops), err)
	}
	if canonJSON(got) != jb {
		t.Fatalf("Apply(%s, Diff → %s) = %s, want %s", ja, opsJSON(ops), canonJSON(got), jb)
	}
	ref, err := refApply(a.ToGo(), roundTripOps(t, ops))
	if err != nil || !reflect.DeepEqual(ref, b.ToGo()) {
		t.Fatalf("refApply(%s, Diff → %s) = %#v, %v; want %s", ja, opsJSON(ops), ref, err, jb)
	}
	if (len(ops) == 0) != (ja == jb) {
		t.Fatalf("Diff of %s and %s: %s", ja, jb, opsJSON(ops))
	}
	cs := DiffPaths(a, b, 0)
	if len(cs) != len(ops) {
		t.Fatalf("DiffPaths gave %d changes, Diff %d ops", len(cs), len(ops))
	}
	for i, c := range cs {
		if c.Op != ops[i].Op || c.Path != ops[i].Path {
			t.Fatalf("change %d = %+v, op %+v", i, c, ops[i])
		}
		p := MustPath(c.Path)
		if c.Op != OpAdd {
			if old, ok := a.Get(p); !ok || !Equal(old, c.Old) {
				t.Fatalf("change %s: Old = %s, a has %s (%v)", c.Path, c.Old, old, ok)
			}
		}
	}
	if len(cs) > 1 {
		if lim := DiffPaths(a, b, 1); len(lim) != 1 {
			t.Fatalf("DiffPaths limit 1 gave %d", len(lim))
		}
	}
}

func checkCodecs(t *rapid.T, v Value) {
	j := v.AppendJSON(nil)
	back, err := FromJSON(j)
	if err != nil {
		t.Fatalf("FromJSON(%s): %v", j, err)
	}
	if !Equal(back, v) || !bytes.Equal(back.AppendJSON(nil), j) {
		t.Fatalf("JSON round trip: %s → %s", j, back)
	}
	c := EncodeCBOR(v)
	back, err = DecodeCBOR(c)
	if err != nil {
		t.Fatalf("DecodeCBOR(%x): %v", c, err)
	}
	if !Equal(back, v) || !bytes.Equal(EncodeCBOR(back), c) {
		t.Fatalf("CBOR round trip: %s → %s", j, back)
	}
	g, err := FromGo(v.ToGo())
	if err != nil || !Equal(g, v) {
		t.Fatalf("FromGo(ToGo(%s)) = %s, %v", j, g, err)
	}
}

// checkTree verifies the trie invariants of every map in v and that the
// trie is the canonical one (as bulk-built from the sorted entries).
func checkTree(t *rapid.T, v Value) {
	switch v.kind {
	case KindArray:
		for _, e := range v.elems() {
			checkTree(t, e)
		}
	case KindMap:
		if v.node() != nil {
			checkNode(t, v.node(), "", true)
			fresh := buildTrie(v.node().entries(nil))
			if !sameShape(v.node(), fresh) {
				t.Fatalf("trie of %s is not canonical", v)
			}
		}
		v.Range(func(_ string, e Value) bool { checkTree(t, e); return true })
	}
}

func checkNode(t *rapid.T, n *tnode, parent string, root bool) {
	if !strings.HasPrefix(n.pfx, parent) || (!root && len(n.pfx) <= len(parent)) {
		t.Fatalf("node %q under %q", n.pfx, parent)
	}
	if !n.hasVal() && len(n.kids()) < 2 {
		t.Fatalf("node %q has no value and %d children", n.pfx, len(n.kids()))
	}
	if len(n.edges()) != len(n.kids()) {
		t.Fatalf("node %q: %d edges, %d kids", n.pfx, len(n.edges()), len(n.kids()))
	}
	size, depth := 0, int32(0)
	if n.hasVal() {
		size, depth = 1, n.val().depth()
	}
	for i, k := range n.kids() {
		if i > 0 && n.edges()[i] <= n.edges()[i-1] {
			t.Fatalf("node %q: edges %q not ascending", n.pfx, n.edges())
		}
		if k.pfx[len(n.pfx)] != n.edges()[i] {
			t.Fatalf("node %q: edge %q leads to %q", n.pfx, n.edges()[i], k.pfx)
		}
		checkNode(t, k, n.pfx, false)
		size += int(k.size)
		depth = max(depth, k.depth())
	}
	if size != int(n.size) || depth != n.depth() {
		t.Fatalf("node %q: size %d depth %d, want %d %d", n.pfx, n.size, n.depth(), size, depth)
	}
}

func sameShape(a, b *tnode) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.pfx != b.pfx || a.edges() != b.edges() || a.hasVal() != b.hasVal() || len(a.kids()) != len(b.kids()) {
		return false
	}
	for i := range a.kids() {
		if !sameShape(a.kids()[i], b.kids()[i]) {
			return false
		}
	}
	return true
}

func opsJSON(ops []Op) string { return string(AppendPatchJSON(nil, ops)) }

// refOp is an op as the reference implementation sees it: parsed back from
// JSON text into plain Go values.
type refOp struct {
	op, path string
	value    any
}

func roundTripOps(t *rapid.T, ops []Op) []refOp {
	out := make([]refOp, len(ops))
	for i, op := range ops {
		var back Op
		if err := back.UnmarshalJSON(op.AppendJSON(nil)); err != nil {
			t.Fatalf("op %s does not round-trip: %v", op.AppendJSON(nil), err)
		}
		out[i] = refOp{back.Op, back.Path, back.Value.ToGo()}
	}
	return out
}

// refApply is a small, independent RFC 6902 implementation (add, remove,
// replace) over plain Go values, written from the RFC rather than from this
// package's code.
func refApply(doc any, ops []refOp) (any, error) {
	for _, op := range ops {
		var toks []string
		if op.path != "" {
			if op.path[0] != '/' {
				return nil, fmt.Errorf("bad pointer %q", op.path)
			}
			for _, s := range strings.Split(op.path[1:], "/") {
				toks = append(toks, strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~"))
			}
		}
		var err error
		doc, err = refApplyAt(doc, toks, op)
		if err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func refApplyAt(doc any, toks []string, op refOp) (any, error) {
	if len(toks) == 0 {
		if op.op == "remove" {
			return nil, fmt.Errorf("remove root")
		}
		return op.value, nil
	}
	tok := toks[0]
	switch d := doc.(type) {
	case map[string]any:
		if len(toks) > 1 {
			c, ok := d[tok]
			if !ok {
				return nil, fmt.Errorf("missing %q", tok)
			}
			nc, err := refApplyAt(c, toks[1:], op)
			d[tok] = nc
			return d, err
		}
		_, exists := d[tok]
		switch {
		case op.op == "add":
			d[tok] = op.value
		case !exists:
			return nil, fmt.Errorf("%s of missing key %q", op.op, tok)
		case op.op == "replace":
			d[tok] = op.value
		default:
			delete(d, tok)
		}
		return d, nil
	case []any:
		i, err := strconv.Atoi(tok)
		if tok == "-" {
			i, err = len(d), nil
		}
		if err != nil || i < 0 || (tok != "0" && tok[0] == '0') {
			return nil, fmt.Errorf("bad index %q", tok)
		}
		if len(toks) > 1 {
			if i >= len(d) {
				return nil, fmt.Errorf("index %d out of range", i)
			}
			nc, err := refApplyAt(d[i], toks[1:], op)
			d[i] = nc
			return d, err
		}
		switch {
		case op.op == "add" && i <= len(d):
			return append(d[:i], append([]any{op.value}, d[i:]...)...), nil
		case op.op == "replace" && i < len(d):
			d[i] = op.value
			return d, nil
		case op.op == "remove" && i < len(d):
			return append(d[:i], d[i+1:]...), nil
		}
		return nil, fmt.Errorf("%s at index %d of %d", op.op, i, len(d))
	}
	return nil, fmt.Errorf("cannot descend into %T", doc)
}
