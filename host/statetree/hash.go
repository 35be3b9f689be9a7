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
	switch v.kind {
	case KindArray:
		if v.array() == nil {
			var stack [9]byte
			return sha256.Sum256(append(stack[:0], tagArray, 0, 0, 0, 0, 0, 0, 0, 0))
		}
		if h := v.array().hash.p.Load(); h != nil {
			return *h
		}
		bp := bufPool.Get().(*[]byte)
		buf := append((*bp)[:0], tagArray)
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(v.array().elems)))
		for i := range v.array().elems {
			buf = appendRef(buf, v.array().elems[i])
		}
		h := Hash(sha256.Sum256(buf))
		v.array().hash.p.Store(&h)
		putBuf(bp, buf)
		return h
	case KindMap:
		var stack [64]byte
		buf := append(stack[:0], tagMap)
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.Len()))
		if v.node() != nil {
			th := v.node().hashNode()
			buf = append(buf, th[:]...)
		}
		return sha256.Sum256(buf)
	}
	var stack [maxInline]byte
	return sha256.Sum256(appendScalar(stack[:0], v))
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

// appendRef appends how a parent refers to child v: the scalar's own
// encoding if it is at most maxInline bytes long, else tagRef and v's hash.
func appendRef(buf []byte, v Value) []byte {
	switch {
	case v.kind == KindArray || v.kind == KindMap:
	case v.kind == KindString && 1+8+len(v.sv()) > maxInline:
	default:
		return appendScalar(buf, v)
	}
	h := v.Hash()
	return append(append(buf, tagRef), h[:]...)
}

// hashNode returns the trie node's hash, computing it (and its children's)
// if not cached yet.
func (n *tnode) hashNode() Hash {
	if h := n.hash.p.Load(); h != nil {
		return *h
	}
	bp := bufPool.Get().(*[]byte)
	buf := append((*bp)[:0], tagTrie)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(n.pfx)))
	buf = append(buf, n.pfx...)
	if n.hasVal() {
		buf = appendRef(append(buf, 1), n.val())
	} else {
		buf = append(buf, 0)
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(n.nk()))
	for _, k := range n.kids() {
		kh := k.hashNode()
		buf = append(buf, kh[:]...)
	}
	h := Hash(sha256.Sum256(buf))
	n.hash.p.Store(&h)
	putBuf(bp, buf)
	return h
}

// bufPool holds encoding buffers for hashing, which recurses too deeply
// for stack buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func putBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 1<<16 {
		*bp = buf
		bufPool.Put(bp)
	}
}
