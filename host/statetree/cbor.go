package statetree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// EncodeCBOR returns v as deterministic CBOR (RFC 8949 §4.2.1, Core
// Deterministic Encoding), the snapshot format:
//
//	null, false, true       simple values 0xf6, 0xf4, 0xf5
//	int                     major type 0 (≥ 0) or 1 (< 0), shortest argument
//	float                   major type 7, the shortest of half, single and
//	                        double precision that holds the value exactly
//	string                  major type 3 (text), definite length
//	array                   major type 4, definite length
//	map                     major type 5, definite length, keys (text) sorted
//	                        by their encoded bytes: shorter keys first, then
//	                        bytewise
//
// Int and float stay distinct kinds (an integral float is still a float), so
// DecodeCBOR(EncodeCBOR(v)) equals v. The encoder is hand-written rather than
// fxamacker/cbor's reflection-driven one because it walks the tree directly
// (no conversion to map[string]any) and is several times faster; the tests
// check that its output is byte-identical to fxamacker's Core Deterministic
// encoding of the same data.
func EncodeCBOR(v Value) []byte {
	return AppendCBOR(nil, v)
}

// AppendCBOR appends EncodeCBOR(v) to buf.
func AppendCBOR(buf []byte, v Value) []byte {
	e := cborEncoder{buf: buf}
	e.value(v, 0)
	return e.buf
}

type cborEncoder struct {
	buf     []byte
	scratch [][]entry // per-depth buffers for sorting map entries
}

func (e *cborEncoder) head(major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		e.buf = append(e.buf, m|byte(n))
	case n <= math.MaxUint8:
		e.buf = append(e.buf, m|24, byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, m|25), uint16(n))
	case n <= math.MaxUint32:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, m|26), uint32(n))
	default:
		e.buf = binary.BigEndian.AppendUint64(append(e.buf, m|27), n)
	}
}

func (e *cborEncoder) value(v Value, depth int) {
	switch v.kind {
	case KindNull:
		e.buf = append(e.buf, 0xf6)
	case KindBool:
		if v.bits != 0 {
			e.buf = append(e.buf, 0xf5)
		} else {
			e.buf = append(e.buf, 0xf4)
		}
	case KindInt:
		if i := int64(v.bits); i >= 0 {
			e.head(0, uint64(i))
		} else {
			e.head(1, uint64(-1-i))
		}
	case KindFloat:
		f := math.Float64frombits(v.bits)
		if h, ok := toHalf(f); ok {
			e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xf9), h)
		} else if f32 := float32(f); float64(f32) == f {
			e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xfa), math.Float32bits(f32))
		} else {
			e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xfb), v.bits)
		}
	case KindString:
		e.head(3, uint64(len(v.sv())))
		e.buf = append(e.buf, v.sv()...)
	case KindArray:
		es := v.elems()
		e.head(4, uint64(len(es)))
		for _, x := range es {
			e.value(x, depth+1)
		}
	case KindMap:
		e.head(5, uint64(v.Len()))
		if v.node() == nil {
			return
		}
		// The trie iterates in bytewise key order, which is the canonical
		// order (shorter keys first, then bytewise) whenever the key lengths
		// never decrease along it, as in maps whose keys all have the same
		// length. Write the entries in trie order until a key is shorter
		// than the one before; only then sort.
		mark, last := len(e.buf), 0
		if e.inOrder(v.node(), depth, &last) {
			return
		}
		e.buf = e.buf[:mark]
		if v.node().size <= smallMap {
			for l := 0; l < math.MaxInt; {
				l = e.ofLength(v.node(), l, depth)
			}
			return
		}
		for len(e.scratch) <= depth {
			e.scratch = append(e.scratch, nil)
		}
		es := v.node().entries(e.scratch[depth][:0])
		slices.SortStableFunc(es, func(a, b entry) int { return len(a.key) - len(b.key) })
		for _, x := range es {
			e.head(3, uint64(len(x.key)))
			e.buf = append(e.buf, x.key...)
			e.value(x.val, depth+1)
		}
		clear(es)
		e.scratch[depth] = es[:0]
	}
}

// smallMap is the most entries of a map whose keys the encoder puts in
// canonical order by one trie walk per key length (see ofLength) rather
// than by sorting them.
const smallMap = 8

// ofLength writes the entries of trie n whose keys are l bytes long, in
// trie order, which is bytewise, and returns the length of the shortest key
// in n longer than l (math.MaxInt if none). Starting from l = 0, calling it
// again with what it returned writes the entries in canonical order, with
// as many walks as there are key lengths, and no sorting or copying.
func (e *cborEncoder) ofLength(n *tnode, l, depth int) int {
	lp := len(n.pfx)
	if lp > l && n.hasVal() {
		return lp // the shortest key below n
	}
	if lp == l && n.hasVal() {
		e.head(3, uint64(lp))
		e.buf = append(e.buf, n.pfx...)
		e.value(n.val(), depth+1)
	}
	next := math.MaxInt
	for _, k := range n.kids() {
		next = min(next, e.ofLength(k, l, depth))
	}
	return next
}

// inOrder writes the entries of trie n in trie order, and returns false as
// soon as a key is shorter than the one before (*last is the length of the
// previous key): the caller then discards what was written.
//
// It touches the children ahead as it goes (see touchAhead).
func (e *cborEncoder) inOrder(n *tnode, depth int, last *int) bool {
	if n.hasVal() {
		if len(n.pfx) < *last {
			return false
		}
		*last = len(n.pfx)
		e.head(3, uint64(len(n.pfx)))
		e.buf = append(e.buf, n.pfx...)
		e.value(n.val(), depth+1)
	}
	kids := n.kids()
	for i, k := range kids {
		touchAhead(kids, i)
		if !e.inOrder(k, depth, last) {
			return false
		}
	}
	return true
}

// toHalf returns f as an IEEE 754 half-precision float if that is exact.
func toHalf(f float64) (uint16, bool) {
	if f == 0 {
		return 0, true
	}
	var sign uint16
	if f < 0 {
		sign, f = 0x8000, -f
	}
	frac, exp := math.Frexp(f) // f = frac × 2^exp, frac in [0.5, 1)
	e := exp - 1
	switch {
	case e > 15:
		return 0, false
	case e >= -14: // normal
		m := (frac*2 - 1) * 1024
		if m != math.Trunc(m) {
			return 0, false
		}
		return sign | uint16(e+15)<<10 | uint16(m), true
	}
	m := math.Ldexp(f, 24) // subnormal: f = m × 2^-24, m < 1024
	if m != math.Trunc(m) || m >= 1024 {
		return 0, false
	}
	return sign | uint16(m), true
}

// fromHalf decodes an IEEE 754 half-precision float.
func fromHalf(h uint16) float64 {
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	var f float64
	switch e {
	case 0:
		f = math.Ldexp(m, -24)
	case 31:
		if m != 0 {
			f = math.NaN()
		} else {
			f = math.Inf(1)
		}
	default:
		f = math.Ldexp(1024+m, e-25)
	}
	if h&0x8000 != 0 {
		f = -f
	}
	return f
}

// ErrCBOR is wrapped by every DecodeCBOR error.
var ErrCBOR = errors.New("statetree: invalid CBOR")

// DecodeCBOR parses CBOR into a Value. It accepts the data model EncodeCBOR
// produces (null, booleans, integers that fit in an int64, finite floats of
// any width, text strings, arrays, and maps with text keys) and is meant to
// be safe on hostile input: indefinite lengths, byte strings, tags, other
// simple values, invalid UTF-8, duplicate or forbidden keys, nesting deeper
// than MaxDepth, lengths larger than the remaining input and trailing bytes
// are errors, and no allocation is larger than the input allows. Map key
// order and argument widths are not checked, so any encoder's output of the
// same data decodes to the same Value.
func DecodeCBOR(data []byte) (Value, error) {
	d := cborDecoder{data: data}
	v, err := d.value(0)
	if err != nil {
		return null, err
	}
	if d.pos != len(data) {
		return null, d.errorf("%d bytes after the value", len(data)-d.pos)
	}
	return v, nil
}

type cborDecoder struct {
	data []byte
	pos  int
}

func (d *cborDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrCBOR, d.pos, fmt.Sprintf(format, args...))
}

// head reads an item head: the major type and its argument (for major type
// 7, the additional information is returned as info and the raw argument
// bits as n).
func (d *cborDecoder) head() (major, info byte, n uint64, err error) {
	if d.pos >= len(d.data) {
		return 0, 0, 0, d.errorf("unexpected end of input")
	}
	b := d.data[d.pos]
	major, info = b>>5, b&0x1f
	d.pos++
	var size int
	switch {
	case info < 24:
		return major, info, uint64(info), nil
	case info <= 27:
		size = 1 << (info - 24)
	case info == 31:
		d.pos--
		return 0, 0, 0, d.errorf("indefinite-length items are not supported")
	default:
		d.pos--
		return 0, 0, 0, d.errorf("reserved additional information %d", info)
	}
	if len(d.data)-d.pos < size {
		return 0, 0, 0, d.errorf("unexpected end of input")
	}
	for _, c := range d.data[d.pos : d.pos+size] {
		n = n<<8 | uint64(c)
	}
	d.pos += size
	return major, info, n, nil
}

func (d *cborDecoder) text() (string, error) {
	major, _, n, err := d.head()
	if err != nil {
		return "", err
	}
	if major != 3 {
		return "", d.errorf("expected a text string, got major type %d", major)
	}
	if n > uint64(len(d.data)-d.pos) {
		return "", d.errorf("string length %d exceeds the input", n)
	}
	b := d.data[d.pos : d.pos+int(n)]
	if !utf8.Valid(b) {
		return "", d.errorf("%v", ErrInvalidUTF8)
	}
	d.pos += int(n)
	return string(b), nil
}

// key reads a map key: text, interned (see internBytes).
func (d *cborDecoder) key() (string, error) {
	if d.pos < len(d.data) {
		// The common case: a short text head (major type 3, length < 24).
		if h := d.data[d.pos]; h>>5 == 3 && h&0x1f < 24 {
			n := int(h & 0x1f)
			if n <= len(d.data)-d.pos-1 {
				b := d.data[d.pos+1 : d.pos+1+n]
				if ascii(b) || utf8.Valid(b) {
					d.pos += 1 + n
					return internBytes(b), nil
				}
			}
		}
	}
	return d.text()
}

// ascii reports whether b is all ASCII (and so valid UTF-8).
func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func (d *cborDecoder) value(depth int) (Value, error) {
	start := d.pos
	major, info, n, err := d.head()
	if err != nil {
		return null, err
	}
	switch major {
	case 0:
		if n > math.MaxInt64 {
			return null, d.errorf("integer %d does not fit in an int64", n)
		}
		return Int(int64(n)), nil
	case 1:
		if n > math.MaxInt64 {
			return null, d.errorf("integer -1-%d does not fit in an int64", n)
		}
		return Int(-1 - int64(n)), nil
	case 3:
		d.pos = start
		s, err := d.text()
		return stringValue(s), err
	case 4:
		if depth >= MaxDepth {
			return null, d.errorf("nesting deeper than %d", MaxDepth)
		}
		if n > uint64(len(d.data)-d.pos) { // each element takes a byte at least
			return null, d.errorf("array length %d exceeds the input", n)
		}
		es := make([]Value, n)
		for i := range es {
			if es[i], err = d.value(depth + 1); err != nil {
				return null, err
			}
		}
		return arrayOwned(es), nil
	case 5:
		if depth >= MaxDepth {
			return null, d.errorf("nesting deeper than %d", MaxDepth)
		}
		if n > uint64(len(d.data)-d.pos)/2 { // each entry takes two bytes at least
			return null, d.errorf("map length %d exceeds the input", n)
		}
		var small [8]entry // most maps are small: no slice to allocate
		var es []entry
		if n <= uint64(len(small)) {
			es = small[:n]
		} else {
			es = make([]entry, n)
		}
		sorted := true
		for i := range es {
			at := d.pos
			k, err := d.key()
			if err != nil {
				return null, err
			}
			if err := checkToken(k); err != nil { // key checked its UTF-8
				d.pos = at
				return null, d.errorf("%v", err)
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return null, err
			}
			es[i] = entry{k, v}
			if i > 0 && k <= es[i-1].key {
				sorted = false
			}
		}
		if !sorted {
			sortEntries(es)
			for i := 1; i < len(es); i++ {
				if es[i].key == es[i-1].key {
					return null, fmt.Errorf("%w: duplicate map key %q", ErrCBOR, es[i].key)
				}
			}
		}
		return mapValue(buildTrie(es)), nil
	case 7:
		var f float64
		switch info {
		case 20:
			return valFalse, nil
		case 21:
			return valTrue, nil
		case 22:
			return null, nil
		case 25:
			f = fromHalf(uint16(n))
		case 26:
			f = float64(math.Float32frombits(uint32(n)))
		case 27:
			f = math.Float64frombits(n)
		default:
			d.pos = start
			return null, d.errorf("unsupported simple value %d", info)
		}
		v, err := NewFloat(f)
		if err != nil {
			d.pos = start
			return null, d.errorf("%v", err)
		}
		return v, nil
	}
	d.pos = start
	return null, d.errorf("unsupported major type %d (%s)", major, majorNames[major])
}

var majorNames = [8]string{"uint", "negative int", "byte string", "text string", "array", "map", "tag", "simple/float"}
