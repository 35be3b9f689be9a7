package statetree

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// unsafeString returns b as a string without copying; b must not change
// afterwards.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

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
//   - kids()[i].pfx starts with pfx and is longer; edges()[i] is
//     kids()[i].pfx[len(pfx)], and edges() is strictly ascending.
//
// Because a node's value key is a prefix of every key below it, visiting
// the value first and then the children in edge order yields the keys in
// bytewise order.
//
// Layout. A node with children is one allocation (see allocNode): an array
// of ck child pointers, then ck edge bytes, then the tnode itself, whose kp
// points at the array. The first nk slots of each are in use; the edges of
// a node are found at kp + ck pointers, so a node needs no edges field, and
// the edge bytes and child pointers of small nodes share a cache line with
// the node's header (pfx, kp, meta). A leaf has no array (kp nil, ck 0).
// The header fields that a lookup reads come first; a tnode is 64 bytes, one
// cache line for a leaf (the allocator aligns 64-byte objects to 64).
//
// Nodes are never modified once published: updates copy the nodes on the
// path from the root to the changed entry. The one exception is a node
// still private to the transaction that made it (see edit): a later change
// in the same Tx edits it in place instead of copying it again.
type tnode struct {
	pfx string
	kp  **tnode // the child array, with ck slots of which nk are used
	// meta packs, from bit 0: nk (9 bits), the children in use; ck (9), the
	// capacity of kp and of the edges; depth (10), the deepest nesting of
	// the values in this subtree (at most MaxDepth); the kind of the value
	// (3); and hasVal (1). See the accessors below.
	meta uint32
	size int32 // number of entries in this subtree (a map holds far fewer than 2³¹: each costs a tnode)
	// vptr and vbits are the ptr and bits of the entry's Value (see val),
	// whose kind is in meta: a whole Value would take 24 bytes, 7 of them
	// padding, and the node 80 instead of 64.
	vptr  unsafe.Pointer
	vbits uint64
	// edit is the edit token of the Tx that created the node and may still
	// change it in place (0: none; see Tx). Once that Tx commits or lets a
	// value holding the node escape, it moves to a new token and the node is
	// immutable for good. An owned node always has its own child array.
	edit uint64
	hash hashCell
}

const (
	nkMask     = 1<<9 - 1
	ckShift    = 9
	depthShift = 18
	depthMask  = 1<<10 - 1
	kindShift  = 28
	hasValBit  = 1 << 31

	_ Kind = 7 - KindMap // every Kind fits meta's 3 bits (else this overflows)
)

// nk returns the number of children.
func (n *tnode) nk() int { return int(n.meta & nkMask) }

// ck returns the capacity for children.
func (n *tnode) ck() int { return int(n.meta >> ckShift & nkMask) }

// setKids sets the number and capacity of children.
func (n *tnode) setKids(nk, ck int) {
	n.meta = n.meta&^(nkMask|nkMask<<ckShift) | uint32(nk) | uint32(ck)<<ckShift
}

// depth returns the deepest nesting of the values in the subtree.
func (n *tnode) depth() int32 { return int32(n.meta >> depthShift & depthMask) }

// setDepth sets the depth, saturating at 1023. A Value nests at most
// MaxDepth (512) deep, but a too-deep one may be built (wrap) before the
// check that rejects it; saturated depths are still too deep, and are
// still ordered correctly against every valid one.
func (n *tnode) setDepth(d int32) {
	n.meta = n.meta&^(depthMask<<depthShift) | uint32(min(d, depthMask))<<depthShift
}

// hasVal reports whether an entry's key is pfx.
func (n *tnode) hasVal() bool { return n.meta&hasValBit != 0 }

// val returns the value of the entry at the node (null if none).
func (n *tnode) val() Value {
	return Value{ptr: n.vptr, bits: n.vbits, kind: Kind(n.meta >> kindShift & 7)}
}

// setVal stores the entry with key pfx and value v.
func (n *tnode) setVal(v Value) {
	n.vptr, n.vbits = v.ptr, v.bits
	n.meta = n.meta&^(7<<kindShift) | uint32(v.kind)<<kindShift | hasValBit
}

// clearVal removes the entry at the node.
func (n *tnode) clearVal() {
	n.vptr, n.vbits = nil, 0
	n.meta &^= 7<<kindShift | hasValBit
}

// touch loads a word of node n, which a walk is about to visit, so that
// the cache miss overlaps the work on the nodes before it: a prefetch in
// all but name (Go has none to call). The load feeds a branch that is never
// taken, since no node has 511 children, so the compiler keeps it and the
// CPU need not wait for it; a load into a variable nothing reads would be
// dropped, and one into a package variable would race between walks.
func touch(n *tnode) {
	if n.meta == ^uint32(0) {
		panic("statetree: corrupt trie node")
	}
}

// touchAhead touches, as a walk is about to visit child i of kids, the
// child two ahead and the map held by the next one (whose node was touched
// a step before, or is by reading its kind), so that the cache misses of a
// wide map's entries, each a node and then its value's map, as in
// {"todos":{id:{...}}} after churn, overlap instead of coming one by one.
// It is small enough to be inlined.
func touchAhead(kids []*tnode, i int) {
	if i+2 < len(kids) {
		touch(kids[i+2])
	}
	if i+1 < len(kids) {
		if n := kids[i+1]; n.meta&(7<<kindShift) == uint32(KindMap)<<kindShift && n.vptr != nil {
			touch((*tnode)(n.vptr))
		}
	}
}

// kids returns the node's children, in edge order.
func (n *tnode) kids() []*tnode { return unsafe.Slice(n.kp, n.nk()) }

// edgeData returns the node's ck edge bytes (nil for a leaf).
func (n *tnode) edgeData() []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(n.kp), uintptr(n.ck())*unsafe.Sizeof(n))), n.ck())
}

// edges returns the node's edge bytes, one per child. The string is valid
// while the node is immutable: for a node owned by a Tx, only until the
// next change.
func (n *tnode) edges() string {
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(n.kp), uintptr(n.ck())*unsafe.Sizeof(n))), n.nk())
}

// edge returns the index of the child under edge byte b, or -1.
//
// It compares eight edges at a time, reading whole words from the edge
// bytes: they start 8-byte aligned (after ck pointers) and the node after
// them is 8-byte aligned too, so the edge array is padded to whole words
// and a word that runs past the last edge still lies within it (never in
// the node's fields); matches there are masked off.
func (n *tnode) edge(b byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	p := unsafe.Add(unsafe.Pointer(n.kp), uintptr(n.ck())*unsafe.Sizeof(n))
	pat, nk := lo*uint64(b), n.nk()
	for i := 0; i < nk; i += 8 {
		x := binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(p, i)), 8)) ^ pat
		// The lowest bit of z set is that of the first zero byte of x: a
		// borrow only carries into bytes above a zero byte.
		if z := (x - lo) &^ x & hi; z != 0 {
			j := i + bits.TrailingZeros64(z)>>3
			if j < nk {
				return j
			}
			return -1
		}
	}
	return -1
}

// entry is a map entry.
type entry struct {
	key string
	val Value
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.key, b.key) })
}

// withKids is the allocation of a node with children: the child array a and
// the edge bytes e (arrays of the same length) before the node.
type withKids[A, E any] struct {
	a A
	e E
	n tnode
}

// allocWith returns a fresh node with k nil children in an allocation of
// type withKids[A, E], whose capacity is the length of A and E.
func allocWith[A, E any](k int) *tnode {
	x := new(withKids[A, E])
	c := unsafe.Sizeof(x.a) / unsafe.Sizeof(x.n.kp)
	x.n.kp = (**tnode)(unsafe.Pointer(&x.a))
	x.n.setKids(k, int(c))
	return &x.n
}

// nodeClasses allocate the nodes with children, by ascending capacity. Each
// capacity is the largest whose node (64 bytes and 9 a slot) fits the size
// class of the allocator named in the comment, so that a node owned by a Tx
// can often gain a child in place (see mut).
var nodeClasses = [...]func(k int) *tnode{
	allocWith[[1]*tnode, [1]byte],     // 80 bytes
	allocWith[[3]*tnode, [3]byte],     // 96
	allocWith[[5]*tnode, [5]byte],     // 112
	allocWith[[7]*tnode, [7]byte],     // 128
	allocWith[[8]*tnode, [8]byte],     // 144
	allocWith[[10]*tnode, [10]byte],   // 160
	allocWith[[12]*tnode, [12]byte],   // 176
	allocWith[[14]*tnode, [14]byte],   // 192
	allocWith[[16]*tnode, [16]byte],   // 208
	allocWith[[17]*tnode, [17]byte],   // 224
	allocWith[[19]*tnode, [19]byte],   // 240
	allocWith[[21]*tnode, [21]byte],   // 256
	allocWith[[24]*tnode, [24]byte],   // 288
	allocWith[[28]*tnode, [28]byte],   // 320
	allocWith[[32]*tnode, [32]byte],   // 352
	allocWith[[35]*tnode, [35]byte],   // 384
	allocWith[[39]*tnode, [39]byte],   // 416
	allocWith[[42]*tnode, [42]byte],   // 448
	allocWith[[46]*tnode, [46]byte],   // 480
	allocWith[[49]*tnode, [49]byte],   // 512
	allocWith[[56]*tnode, [56]byte],   // 576
	allocWith[[64]*tnode, [64]byte],   // 640
	allocWith[[71]*tnode, [71]byte],   // 704
	allocWith[[78]*tnode, [78]byte],   // 768
	allocWith[[92]*tnode, [92]byte],   // 896
	allocWith[[106]*tnode, [106]byte], // 1024
	allocWith[[120]*tnode, [120]byte], // 1152
	allocWith[[135]*tnode, [135]byte], // 1280
	allocWith[[149]*tnode, [149]byte], // 1408
	allocWith[[163]*tnode, [163]byte], // 1536
	allocWith[[192]*tnode, [192]byte], // 1792
	allocWith[[220]*tnode, [220]byte], // 2048
	allocWith[[248]*tnode, [248]byte], // 2304
	allocWith[[256]*tnode, [256]byte], // 2688: every byte an edge
}

// nodeClass[k] is the index in nodeClasses of the smallest class with room
// for k children.
var nodeClass = func() (c [257]uint8) {
	i := 0
	for k := 1; k <= 256; k++ {
		for nodeClasses[i](0).ck() < k {
			i++
		}
		c[k] = uint8(i)
	}
	return c
}()

// allocNode returns a fresh node with k nil children (k <= 256).
func allocNode(k int) *tnode {
	if k == 0 {
		return &tnode{}
	}
	return nodeClasses[nodeClass[k]](k)
}

func newLeaf(key string, val Value, e uint64) *tnode {
	n := &tnode{pfx: key, size: 1, edit: e}
	n.setVal(val)
	n.setDepth(val.depth())
	return n
}

// mut returns n itself if the edit token e owns it and has room for extra
// more children, ready to be changed in place (its cached hash dropped), or
// else a copy owned by e (unowned if e is 0) with that room. (An owned node
// that is full is replaced by a bigger copy, as its owner returns the node
// it changed to the node's parent.)
func (n *tnode) mut(e uint64, extra int) *tnode {
	if e != 0 && n.edit == e && n.nk()+extra <= n.ck() {
		if n.hash.p.Load() != nil {
			n.hash.p.Store(nil)
		}
		return n
	}
	c := allocNode(n.nk() + extra)
	c.meta = n.meta&^(nkMask<<ckShift) | c.meta&(nkMask<<ckShift)
	copy(c.kids(), n.kids())
	copy(c.edgeData(), n.edges())
	c.pfx, c.vptr, c.vbits, c.size, c.edit = n.pfx, n.vptr, n.vbits, n.size, e
	return c
}

// insertKid inserts child k under edge byte b at index j; n has room.
func (n *tnode) insertKid(j int, b byte, k *tnode) {
	n.meta++ // nk is the low bits
	kids, ed := n.kids(), n.edgeData()
	copy(kids[j+1:], kids[j:])
	copy(ed[j+1:len(kids)], ed[j:])
	kids[j], ed[j] = k, b
}

// removeKid removes the child at index i.
func (n *tnode) removeKid(i int) {
	kids, ed := n.kids(), n.edgeData()
	copy(kids[i:], kids[i+1:])
	copy(ed[i:], ed[i+1:len(kids)])
	kids[len(kids)-1] = nil
	n.meta--
}

// shallower recomputes n.depth, which still holds the old depth, after a
// part of n may have become shallower. The depth only drops if no part of
// n reaches the old one any more, which the scan stops at as soon as it
// finds. (The old value of an entry replaced in place is no help here: a
// nested map changed in place by the same Tx shares its node with the new
// value, so only the depths recorded in the trie are the old ones.)
func (n *tnode) shallower() {
	old, d := n.depth(), int32(0)
	if n.hasVal() {
		if d = n.val().depth(); d >= old {
			return
		}
	}
	for _, k := range n.kids() {
		if k.depth() >= old {
			return
		}
		d = max(d, k.depth())
	}
	n.setDepth(d)
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
//
// The descent is PATRICIA-style: it reads only len(pfx) and the edge byte
// at each node, never the prefix bytes, and compares the whole key once,
// with the prefix of the node it stops at. That is enough: every key below
// a node extends its prefix and follows its edge byte, so the only node
// that can hold key is the one this descent reaches; if key left a
// compressed prefix on the way, that final comparison fails.
func (n *tnode) get(key string) (Value, bool) {
	for n != nil {
		lp := len(n.pfx)
		if lp >= len(key) {
			if lp == len(key) && n.hasVal() && n.pfx == key {
				return n.val(), true
			}
			return null, false
		}
		i := n.edge(key[lp])
		if i < 0 {
			return null, false
		}
		n = n.kids()[i]
	}
	return null, false
}

// step is one node on the way from a trie's root to an entry, and the
// index of the child taken from it.
type step struct {
	n *tnode
	i int
}

// find returns the node holding key's entry and path with the nodes above
// it appended, so that replaceAt can change the entry without searching
// again. It descends as get does, comparing the key once at the end.
func (n *tnode) find(key string, path []step) (*tnode, []step, bool) {
	for n != nil {
		lp := len(n.pfx)
		if lp >= len(key) {
			if lp == len(key) && n.hasVal() && n.pfx == key {
				return n, path, true
			}
			return nil, path, false
		}
		i := n.edge(key[lp])
		if i < 0 {
			return nil, path, false
		}
		path = append(path, step{n, i})
		n = n.kids()[i]
	}
	return nil, path, false
}

// replaceAt returns the trie with the value of the entry at node leaf
// (found by find, with path) replaced by val: set for a key known to be
// present, without the search.
func replaceAt(path []step, leaf *tnode, val Value, e uint64) *tnode {
	oldDepth := leaf.depth()
	c := leaf.mut(e, 0)
	c.setVal(val)
	if vd := val.depth(); vd >= c.depth() {
		c.setDepth(vd)
	} else {
		c.shallower()
	}
	for k := len(path) - 1; k >= 0; k-- {
		kid := c
		n := path[k].n
		nodeOld := n.depth()
		c = n.mut(e, 0)
		c.kids()[path[k].i] = kid
		if kid.depth() >= c.depth() {
			c.setDepth(kid.depth())
		} else if kid.depth() < oldDepth && oldDepth == c.depth() {
			c.shallower()
		}
		oldDepth = nodeOld
	}
	return c
}

// fix recomputes the derived fields size and depth of a fresh node.
func (n *tnode) fix() {
	size, depth := int32(0), int32(0)
	if n.hasVal() {
		size, depth = 1, n.val().depth()
	}
	for _, k := range n.kids() {
		size += k.size
		depth = max(depth, k.depth())
	}
	n.size = size
	n.setDepth(depth)
}

// match returns the length of the longest common prefix of key and the
// keys in trie n, found by one PATRICIA descent as in get: the node the
// descent stops at has a prefix that every node above it extends, so its
// common prefix with key is the trie's.
func (n *tnode) match(key string) int {
	if n == nil {
		return 0
	}
	for {
		lp := len(n.pfx)
		if lp >= len(key) {
			break
		}
		i := n.edge(key[lp])
		if i < 0 {
			break
		}
		n = n.kids()[i]
	}
	return lcp(key, n.pfx)
}

// set returns a trie with key bound to val. Nodes owned by the edit token e
// are changed in place, others are copied (e = 0 copies everything).
func (n *tnode) set(key string, val Value, e uint64) *tnode {
	return n.setAt(key, val, n.match(key), e)
}

// setAt is set, given m = n.match(key). On the way down, a node's common
// prefix with key is the shorter of its prefix and m, so no prefix bytes
// are read but those of the node where key branches off, if any.
func (n *tnode) setAt(key string, val Value, m int, e uint64) *tnode {
	if n == nil {
		return newLeaf(key, val, e)
	}
	p := n.pfx
	l := min(len(p), m)
	if l < len(p) {
		// key leaves this node's prefix: a new node is needed above n.
		var nn *tnode
		if l == len(key) {
			nn = allocNode(1)
			nn.setVal(val)
			nn.kids()[0], nn.edgeData()[0] = n, p[l]
		} else {
			nn = allocNode(2)
			leaf := newLeaf(key, val, e)
			kids, ed := nn.kids(), nn.edgeData()
			if key[l] < p[l] {
				kids[0], kids[1], ed[0], ed[1] = leaf, n, key[l], p[l]
			} else {
				kids[0], kids[1], ed[0], ed[1] = n, leaf, p[l], key[l]
			}
		}
		nn.pfx, nn.edit = p[:l], e
		nn.fix()
		return nn
	}
	if len(key) == l {
		c := n.mut(e, 0)
		if !c.hasVal() {
			c.size++
		}
		c.setVal(val)
		if vd := val.depth(); vd >= c.depth() {
			c.setDepth(vd)
		} else {
			c.shallower()
		}
		return c
	}
	b := key[l]
	if i := n.edge(b); i >= 0 {
		old := n.kids()[i]
		oldSize, oldDepth := old.size, old.depth()
		kid := old.setAt(key, val, m, e)
		c := n.mut(e, 0)
		c.kids()[i] = kid
		c.size += kid.size - oldSize
		if kid.depth() >= c.depth() {
			c.setDepth(kid.depth())
		} else if kid.depth() < oldDepth && oldDepth == c.depth() {
			c.shallower() // the deepest subtree may have become shallower
		}
		return c
	}
	ed := n.edges()
	j := 0
	for j < len(ed) && ed[j] < b {
		j++
	}
	leaf := newLeaf(key, val, e)
	c := n.mut(e, 1)
	c.insertKid(j, b, leaf)
	c.size++
	c.setDepth(max(c.depth(), leaf.depth()))
	return c
}

// del returns a trie without key, and whether key was present (if not, n is
// returned unchanged). e is as for set. It descends as get does, comparing
// the key once, with the prefix of the node that would hold it.
func (n *tnode) del(key string, e uint64) (*tnode, bool) {
	if n == nil {
		return nil, false
	}
	p := n.pfx
	if len(key) < len(p) {
		return n, false
	}
	if len(key) == len(p) {
		if !n.hasVal() || p != key {
			return n, false
		}
		switch n.nk() {
		case 0:
			return nil, true
		case 1:
			return n.kids()[0], true
		}
		c := n.mut(e, 0)
		c.clearVal()
		c.size--
		c.shallower()
		return c, true
	}
	i := n.edge(key[len(p)])
	if i < 0 {
		return n, false
	}
	old := n.kids()[i]
	oldSize, oldDepth := old.size, old.depth()
	kid, ok := old.del(key, e)
	if !ok {
		return n, false
	}
	if kid == nil {
		if !n.hasVal() && n.nk() == 2 {
			return n.kids()[1-i], true
		}
		c := n.mut(e, 0)
		c.removeKid(i)
		c.size -= oldSize
		if oldDepth == c.depth() {
			c.shallower()
		}
		return c, true
	}
	c := n.mut(e, 0)
	c.kids()[i] = kid
	c.size += kid.size - oldSize
	if kid.depth() < oldDepth && oldDepth == c.depth() {
		c.shallower()
	}
	return c, true
}

// each calls fn for each entry in key order; it returns false if fn did.
func (n *tnode) each(fn func(string, Value) bool) bool {
	if n == nil {
		return true
	}
	if n.hasVal() && !fn(n.pfx, n.val()) {
		return false
	}
	kids := n.kids()
	for i, k := range kids {
		touchAhead(kids, i)
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
		return newLeaf(es[0].key, es[0].val, 0)
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
	n.pfx = first[:l]
	if hasVal {
		n.setVal(val)
	}
	kids, ed := n.kids(), n.edgeData()
	for i, g := 0, 0; i < len(es); g++ {
		b := es[i].key[l]
		j := i + 1
		for j < len(es) && es[j].key[l] == b {
			j++
		}
		kids[g], ed[g] = build(es[i:j], l+1), b
		i = j
	}
	n.fix()
	return n
}
