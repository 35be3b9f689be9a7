package statetree

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestTrieProbes checks get, find, set and del on keys that are absent in
// every way a PATRICIA descent (which skips the prefix bytes of the nodes
// on the way) could get wrong: prefixes of compressed prefixes, keys that
// diverge inside a compressed prefix yet follow existing edges, keys that
// extend a leaf, and the empty key, as well as on the present keys.
func TestTrieProbes(t *testing.T) {
	sets := [][]string{
		{"abcdef", "abcdxy", "abzz", "b"},
		{"", "a", "ab", "abc"},
		{"todo-0001", "todo-0002", "todo-0010", "todo-0100"},
		{"xyzzy"},
	}
	probes := []string{
		"", "a", "ab", "abc", "abcd", "abce", "abcdef", "abcdefg", "abcdex",
		"aXcdef", "aXcdxy", "abXdef", "Xbcdef", "abzz", "abz", "abzzz", "aXzz",
		"b", "bb", "c", "todo-", "todo-0001", "todo-000", "todo-00011",
		"toXo-0001", "todo-0X01", "todo-01X0", "xyzzy", "xyzz", "xyzzyy", "xYzzy",
	}
	for _, keys := range sets {
		model := map[string]bool{}
		var es []entry
		for i, k := range keys {
			model[k] = true
			es = append(es, entry{k, Int(int64(i))})
		}
		sortEntries(es)
		n := buildTrie(es)
		for _, k := range append(probes, keys...) {
			_, got := n.get(k)
			if got != model[k] {
				t.Errorf("keys %q: get(%q) found %v", keys, k, got)
			}
			leaf, _, found := n.find(k, nil)
			if found != model[k] || found && leaf.pfx != k {
				t.Errorf("keys %q: find(%q) found %v", keys, k, found)
			}
			m, ok := n.del(k, 0)
			if ok != model[k] || !ok && m != n {
				t.Errorf("keys %q: del(%q) reported %v", keys, k, ok)
			}
			checkTrie(t, m, without(es, k))
			want := append(without(es, k), entry{k, Int(99)})
			sortEntries(want)
			checkTrie(t, n.set(k, Int(99), 0), want)
		}
	}
}

func without(es []entry, k string) []entry {
	return slices.DeleteFunc(slices.Clone(es), func(e entry) bool { return e.key == k })
}

// checkTrie checks that n holds exactly the sorted entries es, in the
// canonical shape.
func checkTrie(t *testing.T, n *tnode, es []entry) {
	t.Helper()
	got := n.entries(nil)
	if len(got) != len(es) {
		t.Fatalf("trie has %d entries, want %d", len(got), len(es))
	}
	for i := range es {
		if got[i].key != es[i].key || !Equal(got[i].val, es[i].val) {
			t.Fatalf("entry %d is %q=%v, want %q=%v", i, got[i].key, got[i].val, es[i].key, es[i].val)
		}
		if v, ok := n.get(es[i].key); !ok || !Equal(v, es[i].val) {
			t.Fatalf("get(%q) = %v, %v after the change", es[i].key, v, ok)
		}
	}
	if !sameShape(n, buildTrie(es)) {
		t.Fatalf("trie of %d entries is not canonical", len(es))
	}
	if n != nil && int(n.size) != len(es) {
		t.Fatalf("size %d, want %d", n.size, len(es))
	}
}

// TestTrieEdge checks the word-at-a-time edge search against
// strings.IndexByte on nodes of every capacity, including edge bytes that
// the search's borrow tricks could confuse (0x00, 0x01, 0x80, 0xff).
func TestTrieEdge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for k := 1; k <= 256; k++ {
		set := map[byte]bool{0: k%2 == 0, 1: k%3 == 0, 0x80: k%5 == 0, 0xff: k%7 == 0}
		for b, in := range set {
			if !in {
				delete(set, b)
			}
		}
		for len(set) < k {
			set[byte(rng.IntN(256))] = true
		}
		es := []entry{{"k", Int(-1)}} // a value, so that one edge makes a node
		for b := range set {
			es = append(es, entry{"k" + string([]byte{b}), Int(int64(b))})
		}
		sortEntries(es)
		n := buildTrie(es)
		for b := range 256 {
			if got, want := n.edge(byte(b)), strings.IndexByte(n.edges(), byte(b)); got != want {
				t.Fatalf("%d edges %q: edge(%#x) = %d, want %d", k, n.edges(), b, got, want)
			}
		}
	}
}

// TestTooDeepPath sets a value under a path longer than any depth a trie
// node records (1023): the nested maps built for the missing part of the
// path are too deep, which must be reported, not overflow the node.
func TestTooDeepPath(t *testing.T) {
	root := mustJSON(t, `{"a":{}}`)
	p := MustPath(strings.Repeat("/a", 1100))
	if _, _, err := root.Set(p, Int(1)); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("Set: %v, want ErrTooDeep", err)
	}
	tx := root.Begin()
	if err := tx.Set(p, Int(1)); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("Tx.Set: %v, want ErrTooDeep", err)
	}
	if v, _ := tx.Commit(); !Equal(v, root) {
		t.Fatalf("the failed Set changed the root to %s", v)
	}
}
