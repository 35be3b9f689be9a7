package statetree

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"sync/atomic"
)

// Hash is a Merkle hash of a Value (SHA-256 of its canonical encoding; see
// the package documentation for the byte layout).
type Hash [sha256.Size]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// hashCell caches a node's hash. Nodes are immutable, so the hash never
// changes; two goroutines racing to fill the cell compute the same bytes and
// either store wins.
type hashCell struct{ p atomic.Pointer[Hash] }

// Encoding tags. Part of the hash format: never change them.
const (
	tagNull   = 0x00
	tagFalse  = 0x01
	tagTrue   = 0x02
	tagInt    = 0x03
	tagFloat  = 0x04
	tagString = 0x05
	tagArray  = 0x06
	tagMap    = 0x07
	tagTrie   = 0x08
	tagRef    = 0xFF

	// maxInline is the largest encoding of a scalar that a parent embeds
	// instead of its hash.
	maxInline = 64
)

// Hash returns v's Merkle hash. Equal values have equal hashes and, SHA-256
// being collision resistant, different values have different hashes; the
// hash is the same on every host and architecture. Hashes of containers are
// computed once and cached in their immutable nodes, so after a change only
// the nodes on the changed path are hashed again.
func (v Value) Hash() Hash {
	prepare(v)
	return cachedHash(v)
}

// The hashing is split in two so that the encodings can be built in
// buffers on the stack. prepare, hashArray and hashNode recurse, and
// compute and cache the hashes of the nodes below a container before its
// own; the functions that build an encoding (cachedHash, appendRef,
// appendArray, appendNode) never recurse but read those cached hashes.
// Were the encoders part of the recursion, Go's escape analysis would
// move every buffer they are given to the heap.

// prepare computes and caches the hashes of v's nodes if v is a container.
func prepare(v Value) {
	switch v.kind {
	case KindArray:
		if a := v.array(); a != nil {
			a.hashArray()
		}
	case KindMap:
		if n := v.node(); n != nil {
			n.hashNode()
		}
	}
}

// cachedHash returns v's hash, which for a container must have been
// prepared.
func cachedHash(v Value) Hash {
	var stack [maxInline]byte
	switch v.kind {
	case KindArray:
		if a := v.array(); a != nil {
			if h := a.hash.p.Load(); h != nil {
				return *h
			}
			return slowHashArray(a)
		}
		return sha256.Sum256(append(stack[:0], tagArray, 0, 0, 0, 0, 0, 0, 0, 0))
	case KindMap:
		buf := append(stack[:0], tagMap)
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.Len()))
		if n := v.node(); n != nil {
			th := n.hash.p.Load()
			if th == nil {
				h := slowHashNode(n)
				th = &h
			}
			buf = append(buf, th[:]...)
		}
		return sha256.Sum256(buf)
	}
	return sha256.Sum256(appendScalar(stack[:0], v))
}

// slowHashArray and slowHashNode are hashArray and hashNode, which the
// encoders call indirectly, so as not to join the recursion, should a hash
// that prepare cached be gone. That does not happen (only a Tx drops the
// hash of a node it owns and edits in place, and not while it hashes);
// they keep the encoders correct regardless.
var (
	slowHashArray func(*arrNode) Hash
	slowHashNode  func(*tnode) Hash
)

func init() {
	slowHashArray = (*arrNode).hashArray
	slowHashNode = (*tnode).hashNode
}

// stackBufSize is the size of the stack buffers in which nodes are encoded
// for hashing: enough for a trie node with 13 children and a short prefix.
// Bigger encodings take a buffer from bufPool.
const stackBufSize = 512

// hashArray returns the array's hash, computing it (and its elements') if
// not cached yet.
func (a *arrNode) hashArray() Hash {
	if h := a.hash.p.Load(); h != nil {
		return *h
	}
	need := 1 + 8
	for i := range a.elems {
		prepare(a.elems[i])
		need += refLen(a.elems[i])
	}
	var h Hash
	if need <= stackBufSize {
		var stack [stackBufSize]byte
		h = sha256.Sum256(appendArray(stack[:0], a))
	} else {
		bp := getBuf(need)
		h = sha256.Sum256(appendArray((*bp)[:0], a))
		putBuf(bp)
	}
	a.hash.p.Store(&h)
	return h
}

// hashNode returns the trie node's hash, computing it (and its children's)
// if not cached yet.
func (n *tnode) hashNode() Hash {
	if h := n.hash.p.Load(); h != nil {
		return *h
	}
	if n.hasVal() {
		prepare(n.val())
	}
	for _, k := range n.kids() {
		k.hashNode()
	}
	var h Hash
	// A ref is at most maxInline bytes long.
	if need := 1 + 8 + len(n.pfx) + 1 + maxInline + 2 + sha256.Size*n.nk(); need <= stackBufSize {
		var stack [stackBufSize]byte
		h = sha256.Sum256(appendNode(stack[:0], n))
	} else {
		bp := getBuf(need)
		h = sha256.Sum256(appendNode((*bp)[:0], n))
		putBuf(bp)
	}
	n.hash.p.Store(&h)
	return h
}

// appendArray appends the encoding of a prepared array.
func appendArray(buf []byte, a *arrNode) []byte {
	buf = append(buf, tagArray)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(a.elems)))
	for i := range a.elems {
		buf = appendRef(buf, a.elems[i])
	}
	return buf
}

// appendNode appends the encoding of a prepared trie node.
func appendNode(buf []byte, n *tnode) []byte {
	buf = append(buf, tagTrie)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(n.pfx)))
	buf = append(buf, n.pfx...)
	if n.hasVal() {
		buf = appendRef(append(buf, 1), n.val())
	} else {
		buf = append(buf, 0)
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(n.nk()))
	for _, k := range n.kids() {
		kh := k.hash.p.Load()
		if kh == nil {
			h := slowHashNode(k)
			kh = &h
		}
		buf = append(buf, kh[:]...)
	}
	return buf
}

// appendScalar appends the encoding of a scalar (any non-container).
func appendScalar(buf []byte, v Value) []byte {
	switch v.kind {
	case KindBool:
		if v.bits != 0 {
			return append(buf, tagTrue)
		}
		return append(buf, tagFalse)
	case KindInt:
		return binary.BigEndian.AppendUint64(append(buf, tagInt), v.bits)
	case KindFloat:
		return binary.BigEndian.AppendUint64(append(buf, tagFloat), v.bits)
	case KindString:
		buf = binary.BigEndian.AppendUint64(append(buf, tagString), uint64(len(v.sv())))
		return append(buf, v.sv()...)
	case KindArray, KindMap:
		panic("statetree: appendScalar of a container")
	}
	return append(buf, tagNull)
}

// refLen returns the length of v's ref (see appendRef).
func refLen(v Value) int {
	switch v.kind {
	case KindArray, KindMap:
		return 1 + sha256.Size
	case KindString:
		if n := 1 + 8 + len(v.sv()); n <= maxInline {
			return n
		}
		return 1 + sha256.Size
	case KindInt, KindFloat:
		return 1 + 8
	}
	return 1
}

// appendRef appends how a parent refers to child v, which must have been
// prepared: the scalar's own encoding if it is at most maxInline bytes
// long, else tagRef and v's hash.
func appendRef(buf []byte, v Value) []byte {
	switch {
	case v.kind == KindArray || v.kind == KindMap:
	case v.kind == KindString && 1+8+len(v.sv()) > maxInline:
	default:
		return appendScalar(buf, v)
	}
	h := cachedHash(v)
	return append(append(buf, tagRef), h[:]...)
}

// bufPool holds encoding buffers for the nodes whose encodings do not fit
// a stack buffer.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// getBuf returns a pooled buffer with a capacity of at least n bytes. The
// encoders never grow it (n is an upper bound of the encoding's length).
func getBuf(n int) *[]byte {
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, 0, n)
	}
	return bp
}

// putBuf returns a buffer to the pool unless it is too big to keep.
func putBuf(bp *[]byte) {
	if cap(*bp) <= 1<<16 {
		bufPool.Put(bp)
	}
}
