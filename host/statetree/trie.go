package statetree

import (
	"slices"
	"strings"
)

// tnode is a node of the persistent radix trie that holds a map's entries.
//
// The trie is path-compressed and canonical: its shape depends only on the
// set of keys, never on the order of insertions, which is what lets a map's
// Merkle hash be computed from the shape (see hash.go). The invariants are:
//
//   - pfx is the node's full key prefix, from the map's root. If hasVal, pfx
//     is the key of the entry stored here.
//   - a node without a value has at least two children, and pfx is then the
//     longest common prefix of all keys below it.
//   - kids[i].pfx starts with pfx and is longer; edges[i] is
//     kids[i].pfx[len(pfx)], and edges is strictly ascending.
//
// Because a node's value key is a prefix of every key below it, visiting
// the value first and then the children in edge order yields the keys in
// bytewise order. Nodes are never modified once published: updates copy
// the nodes on the path from the root to the changed entry.
type tnode struct {
	pfx    string
	edges  string
	kids   []*tnode
	val    Value
	hasVal bool
	depth  int32 // deepest nesting of the values in this subtree
	size   int   // number of entries in this subtree
	hash   hashCell
}

// entry is a map entry.
type entry struct {
	key string
	val Value
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.key, b.key) })
}

// allocNode returns a fresh node with k nil children. Nodes with up to 16
// children share one allocation with their child slice.
func allocNode(k int) *tnode {
	switch {
	case k == 0:
		return &tnode{}
	case k <= 2:
		x := &struct {
			tnode
			a [2]*tnode
		}{}
		x.kids = x.a[:k:k]
		return &x.tnode
	case k <= 4:
		x := &struct {
			tnode
			a [4]*tnode
		}{}
		x.kids = x.a[:k:k]
		return &x.tnode
	case k <= 8:
		x := &struct {
			tnode
			a [8]*tnode
		}{}
		x.kids = x.a[:k:k]
		return &x.tnode
	case k <= 16:
		x := &struct {
			tnode
			a [16]*tnode
		}{}
		x.kids = x.a[:k:k]
		return &x.tnode
	}
	n := &tnode{}
	n.kids = make([]*tnode, k)
	return n
}

func newLeaf(key string, val Value) *tnode {
	return &tnode{pfx: key, val: val, hasVal: true, size: 1, depth: val.depth()}
}

// lcp returns the length of the longest common prefix of a and b.
func lcp(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i+8 <= n && a[i:i+8] == b[i:i+8] {
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// get returns the value stored under key.
func (n *tnode) get(key string) (Value, bool) {
	d := 0
	for n != nil {
		p := n.pfx
		if len(key) < len(p) || key[d:len(p)] != p[d:] {
			return null, false
		}
		if len(key) == len(p) {
			if n.hasVal {
				return n.val, true
			}
			return null, false
		}
		i := strings.IndexByte(n.edges, key[len(p)])
		if i < 0 {
			return null, false
		}
		d = len(p) + 1
		n = n.kids[i]
	}
	return null, false
}

// fix recomputes the derived fields size and depth of a fresh node.
func (n *tnode) fix() {
	size, depth := 0, int32(0)
	if n.hasVal {
		size, depth = 1, n.val.depth()
	}
	for _, k := range n.kids {
		size += k.size
		depth = max(depth, k.depth)
	}
	n.size, n.depth = size, depth
}

// set returns a trie with key bound to val. d is a length known to be a
// common prefix of key and n.pfx.
func (n *tnode) set(key string, val Value, d int) *tnode {
	if n == nil {
		return newLeaf(key, val)
	}
	p := n.pfx
	l := d + lcp(key[d:], p[d:])
	if l < len(p) {
		// key leaves this node's prefix: a new node is needed above n.
		var nn *tnode
		if l == len(key) {
			nn = allocNode(1)
			nn.hasVal, nn.val = true, val
			nn.edges, nn.kids[0] = p[l:l+1], n
		} else {
			nn = allocNode(2)
			leaf := newLeaf(key, val)
			if key[l] < p[l] {
				nn.edges, nn.kids[0], nn.kids[1] = string([]byte{key[l], p[l]}), leaf, n
			} else {
				nn.edges, nn.kids[0], nn.kids[1] = string([]byte{p[l], key[l]}), n, leaf
			}
		}
		nn.pfx = p[:l]
		nn.fix()
		return nn
	}
	if len(key) == l {
		c := &tnode{pfx: p, edges: n.edges, kids: n.kids, val: val, hasVal: true}
		c.fix()
		return c
	}
	b := key[l]
	var c *tnode
	if i := strings.IndexByte(n.edges, b); i >= 0 {
		c = allocNode(len(n.kids))
		copy(c.kids, n.kids)
		old, kid := n.kids[i], n.kids[i].set(key, val, l+1)
		c.kids[i] = kid
		c.pfx, c.edges, c.val, c.hasVal = p, n.edges, n.val, n.hasVal
		c.size = n.size + kid.size - old.size
		if c.depth = n.depth; kid.depth > n.depth {
			c.depth = kid.depth
		} else if old.depth == n.depth && kid.depth < old.depth {
			c.fix() // the deepest subtree may have become shallower
		}
		return c
	} else {
		j := 0
		for j < len(n.edges) && n.edges[j] < b {
			j++
		}
		c = allocNode(len(n.kids) + 1)
		c.edges = n.edges[:j] + string([]byte{b}) + n.edges[j:]
		copy(c.kids, n.kids[:j])
		c.kids[j] = newLeaf(key, val)
		copy(c.kids[j+1:], n.kids[j:])
	}
	c.pfx, c.val, c.hasVal = p, n.val, n.hasVal
	c.fix()
	return c
}

// del returns a trie without key, and whether key was present (if not, n is
// returned unchanged). d is as for set.
func (n *tnode) del(key string, d int) (*tnode, bool) {
	if n == nil {
		return nil, false
	}
	p := n.pfx
	if len(key) < len(p) || key[d:len(p)] != p[d:] {
		return n, false
	}
	if len(key) == len(p) {
		if !n.hasVal {
			return n, false
		}
		switch len(n.kids) {
		case 0:
			return nil, true
		case 1:
			return n.kids[0], true
		}
		c := &tnode{pfx: p, edges: n.edges, kids: n.kids}
		c.fix()
		return c, true
	}
	i := strings.IndexByte(n.edges, key[len(p)])
	if i < 0 {
		return n, false
	}
	kid, ok := n.kids[i].del(key, len(p)+1)
	if !ok {
		return n, false
	}
	var c *tnode
	if kid == nil {
		if !n.hasVal && len(n.kids) == 2 {
			return n.kids[1-i], true
		}
		c = allocNode(len(n.kids) - 1)
		c.edges = n.edges[:i] + n.edges[i+1:]
		copy(c.kids, n.kids[:i])
		copy(c.kids[i:], n.kids[i+1:])
	} else {
		c = allocNode(len(n.kids))
		c.edges = n.edges
		copy(c.kids, n.kids)
		c.kids[i] = kid
	}
	c.pfx, c.val, c.hasVal = p, n.val, n.hasVal
	c.fix()
	return c, true
}

// each calls fn for each entry in key order; it returns false if fn did.
func (n *tnode) each(fn func(string, Value) bool) bool {
	if n == nil {
		return true
	}
	if n.hasVal && !fn(n.pfx, n.val) {
		return false
	}
	for _, k := range n.kids {
		if !k.each(fn) {
			return false
		}
	}
	return true
}

// entries appends the subtree's entries to es in key order.
func (n *tnode) entries(es []entry) []entry {
	n.each(func(k string, v Value) bool { es = append(es, entry{k, v}); return true })
	return es
}

// buildTrie builds the canonical trie of sorted entries with unique keys in
// O(total key length).
func buildTrie(es []entry) *tnode {
	if len(es) == 0 {
		return nil
	}
	return build(es, 0)
}

func build(es []entry, d int) *tnode {
	if len(es) == 1 {
		return newLeaf(es[0].key, es[0].val)
	}
	first, last := es[0].key, es[len(es)-1].key
	l := d + lcp(first[d:], last[d:])
	hasVal, val := false, null
	if len(first) == l {
		hasVal, val = true, es[0].val
		es = es[1:]
	}
	groups := 0
	for i := 0; i < len(es); i++ {
		if i == 0 || es[i].key[l] != es[i-1].key[l] {
			groups++
		}
	}
	n := allocNode(groups)
	n.pfx, n.hasVal, n.val = first[:l], hasVal, val
	edges := make([]byte, 0, groups)
	n.kids = n.kids[:0]
	for i := 0; i < len(es); {
		b := es[i].key[l]
		j := i + 1
		for j < len(es) && es[j].key[l] == b {
			j++
		}
		edges = append(edges, b)
		n.kids = append(n.kids, build(es[i:j], l+1))
		i = j
	}
	n.edges = string(edges)
	n.fix()
	return n
}
