package nodb

import (
	"encoding/binary"

	"github.com/nodb-dev/nodb/abi"
)

// Fast paths for the per-event work of a reducer. Go compiled to
// WebAssembly pays dearly for every call, multi-value return and map hash
// (there are no registers to keep values in across calls and no AES hash),
// so the readers below walk CBOR in flat loops with the head decoding
// inlined, and handler lookup compares bytes instead of hashing.
//
// The data read here comes from the host, which validated it (event
// payloads are its own translation of JSON, state values its own
// encoding), so skipping an item checks only its structure (heads, lengths,
// item counts), not the UTF-8 of text or the range of integers: an accessor
// validates what it returns, as before.

// head decodes the item head at b[pos]: its major type, its argument, and
// the position after the head. ok is false for a truncated head or
// additional information 28 to 31 (reserved, indefinite lengths).
func head(b []byte, pos int) (major byte, arg uint64, next int, ok bool) {
	if pos >= len(b) {
		return 0, 0, 0, false
	}
	h := b[pos]
	major, info := h>>5, h&31
	pos++
	switch {
	case info < 24:
		return major, uint64(info), pos, true
	case info == 24:
		if pos+1 > len(b) {
			return 0, 0, 0, false
		}
		return major, uint64(b[pos]), pos + 1, true
	case info == 25:
		if pos+2 > len(b) {
			return 0, 0, 0, false
		}
		return major, uint64(b[pos])<<8 | uint64(b[pos+1]), pos + 2, true
	case info == 26:
		if pos+4 > len(b) {
			return 0, 0, 0, false
		}
		return major, uint64(b[pos])<<24 | uint64(b[pos+1])<<16 | uint64(b[pos+2])<<8 | uint64(b[pos+3]), pos + 4, true
	case info == 27:
		if pos+8 > len(b) {
			return 0, 0, 0, false
		}
		var a uint64
		for _, c := range b[pos : pos+8] {
			a = a<<8 | uint64(c)
		}
		return major, a, pos + 8, true
	}
	return 0, 0, 0, false
}

// skipItem returns the position after the data item starting at b[pos], or
// -1 if it is truncated or not of the JSON data model's major types (byte
// strings and tags are refused). It loops instead of recursing: pending
// counts the items still to skip.
func skipItem(b []byte, pos int) int {
	for pending := uint64(1); pending > 0; pending-- {
		if pos >= len(b) {
			return -1
		}
		h := b[pos]
		major, info := h>>5, h&31
		var arg uint64
		if info < 24 { // the common case, inline
			arg = uint64(info)
			pos++
		} else if info == 24 && pos+1 < len(b) { // a one-byte argument (a text of 24 to 255 bytes), inline too
			arg = uint64(b[pos+1])
			pos += 2
		} else {
			var ok bool
			if major, arg, pos, ok = head(b, pos); !ok {
				return -1
			}
		}
		rest := uint64(len(b) - pos)
		switch major {
		case 0, 1, 7:
		case 3:
			if arg > rest {
				return -1
			}
			pos += int(arg)
		case 4:
			if arg > rest { // every item takes a byte at least
				return -1
			}
			pending += arg
		case 5:
			if arg > rest/2 {
				return -1
			}
			pending += 2 * arg
		default:
			return -1
		}
	}
	return pos
}

// mapStart returns the entry count of a map value and the position of its
// first key.
func (v Value) mapStart() (n uint64, pos int, ok bool) {
	b := v.b
	if len(b) == 0 || b[0]>>5 != 5 {
		return 0, 0, false
	}
	if b[0]&31 < 24 {
		return uint64(b[0] & 31), 1, true
	}
	_, n, pos, ok = head(b, 0)
	return n, pos, ok
}

// textAt returns the bytes of the text string at b[pos] and the position
// after it; ok is false if the item there is not a text string.
func textAt(b []byte, pos int) (t []byte, next int, ok bool) {
	if pos >= len(b) || b[pos]>>5 != 3 {
		return nil, 0, false
	}
	n, start := uint64(b[pos]&31), pos+1
	if n >= 24 {
		_, n, start, ok = head(b, pos)
		if !ok {
			return nil, 0, false
		}
	}
	if n > uint64(len(b)-start) {
		return nil, 0, false
	}
	end := start + int(n)
	return b[start:end:end], end, true
}

// key is Value.Key: the value of the first entry with the key, or Missing.
// Entries whose key is a short text and whose value is a one-byte item or a
// short text (the usual payload and state fields) are stepped over without
// a call; anything else goes through textAt and skipItem.
func (v Value) key(key string) Value {
	b := v.b
	var n uint64
	var pos int
	if len(b) > 0 && b[0]>>5 == 5 && b[0]&31 < 24 { // a small map
		n, pos = uint64(b[0]&31), 1
	} else {
		var ok bool
		if n, pos, ok = v.mapStart(); !ok {
			return Value{}
		}
	}
	for ; n > 0; n-- {
		if pos >= len(b) {
			return Value{}
		}
		var next int
		var match bool
		if h := b[pos]; h>>5 == 3 && h&31 < 24 { // a short text key
			next = pos + 1 + int(h&31)
			if next > len(b) {
				return Value{}
			}
			match = next-pos-1 == len(key) && equalShort(b[pos+1:next], key)
		} else {
			t, after, isText := textAt(b, pos)
			if !isText {
				if after = skipItem(b, pos); after < 0 {
					return Value{}
				}
			}
			next, match = after, isText && string(t) == key
		}
		if next >= len(b) {
			return Value{}
		}
		var end int
		switch h := b[next]; {
		case h&31 < 24 && (h>>5 == 0 || h>>5 == 1 || h>>5 == 7): // one byte
			end = next + 1
		case h>>5 == 3 && h&31 < 24: // a short text
			if end = next + 1 + int(h&31); end > len(b) {
				return Value{}
			}
		case h == 0x78 && next+1 < len(b): // a text of 24 to 255 bytes
			if end = next + 2 + int(b[next+1]); end > len(b) {
				return Value{}
			}
		default:
			if end = skipItem(b, next); end < 0 {
				return Value{}
			}
		}
		if match {
			return Value{b: b[next:end:end]}
		}
		pos = end
	}
	return Value{}
}

// equalShort reports whether a holds s. Short keys are compared in a loop
// that the compiler inlines, cheaper inside Wasm than the calls of the
// runtime's comparison.
func equalShort(a []byte, s string) bool {
	if len(a) != len(s) || len(s) > 8 {
		return string(a) == s
	}
	for i := 0; i < len(s); i++ {
		if a[i] != s[i] {
			return false
		}
	}
	return true
}

// each is Value.Each.
func (v Value) each(fn func(key string, val Value) bool) {
	n, pos, ok := v.mapStart()
	if !ok {
		return
	}
	b := v.b
	for ; n > 0; n-- {
		if pos >= len(b) {
			return
		}
		var t []byte
		var next int
		if h := b[pos]; h>>5 == 3 && h&31 < 24 { // a short text key
			next = pos + 1 + int(h&31)
			if next > len(b) {
				return
			}
			t = b[pos+1 : next]
		} else {
			var isText bool
			if t, next, isText = textAt(b, pos); !isText {
				if next = skipItem(b, pos); next < 0 {
					return
				}
			}
		}
		end := skipItem(b, next)
		if end < 0 {
			return
		}
		if !fn(newString(t), Value{b: b[next:end:end]}) {
			return
		}
		pos = end
	}
}

// Handler lookup: a small table indexed by a hash of the type's length and
// two words holding its first and last bytes (typeKey). For a type of up to
// 16 bytes the words hold every byte, so a slot whose key equals the
// type's is the type's entry; longer types compare the rest of the bytes.
// That is a hash, two loads and three compares in line, with no loop and
// no call into the runtime's comparison (each call and each loop iteration
// costs a pass through the dispatch loop of Go code in WebAssembly).
//
// On only runs during initialisation, so the table is built once, at the
// first lookup (On invalidates it). A type missing from the table is looked
// up in the map
// (types that share a slot with another stay out of the table; the host
// only sends declared types, so misses are rare), and a type found there
// rebuilds the table.
const typeSlots = 64

var (
	typeTable    [typeSlots]*entry
	typeTableFor = -1 // len(handlers) when the table was built; -1: to build
)

// typeKey returns the length of t and two words that hold its bytes: the
// first and last 8 (or 4) bytes, overlapping for lengths under 16 (or 8);
// for lengths under 4, bytes 0, n/2 and n-1, which are all of them.
func typeKey(t []byte) (n int, a, b uint64) {
	le := binary.LittleEndian
	switch n = len(t); {
	case n >= 8:
		return n, le.Uint64(t), le.Uint64(t[n-8:])
	case n >= 4:
		return n, uint64(le.Uint32(t)), uint64(le.Uint32(t[n-4:]))
	case n > 0:
		return n, uint64(t[0]) | uint64(t[n/2])<<8 | uint64(t[n-1])<<16, 0
	}
	return 0, 0, 0
}

// typeSlot returns the table slot of a type key.
func typeSlot(n int, a, b uint64) uint64 {
	return ((a^uint64(n))*0x9e3779b97f4a7c15 + b*0xc2b2ae3d27d4eb4f) >> (64 - 6)
}

// handlerFor returns the entry registered for an event type, or nil.
// nodbReduce does the lookup of the usual types (8 to 16 bytes, found in
// the table) in line and calls this for the rest: shorter or longer types,
// misses, and a table to build.
func handlerFor(typ []byte) *entry {
	if typeTableFor == len(handlers) {
		n, a, b := typeKey(typ)
		e := typeTable[typeSlot(n, a, b)]
		if e != nil && e.n == n && e.a == a && e.b == b && (n <= 16 || e.typ == string(typ)) {
			return e
		}
	}
	e, ok := handlers[string(typ)]
	if ok || typeTableFor != len(handlers) {
		buildTypeTable()
	}
	return e
}

// buildTypeTable fills the lookup table from the handlers map.
func buildTypeTable() {
	typeTable = [typeSlots]*entry{}
	typeTableFor = len(handlers)
	var taken [typeSlots]bool
	for _, e := range handlers {
		e.n, e.a, e.b = typeKey([]byte(e.typ))
		i := typeSlot(e.n, e.a, e.b)
		if taken[i] {
			typeTable[i] = nil
			continue
		}
		typeTable[i], taken[i] = e, true
	}
}

// appendCommon appends the most common values of State.Set and Map
// entries: a type switch of a few cases is a few comparisons, where
// AppendCBOR's full one is a search over type hashes. ok is false for
// every other type.
func appendCommon(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case string:
		return appendText(dst, x), true
	case bool:
		return abi.AppendBool(dst, x), true
	case int:
		return abi.AppendInt(dst, int64(x)), true
	}
	return dst, false
}

// appendText is abi.AppendString with the head of a string of less than
// 256 bytes in line.
func appendText(dst []byte, s string) []byte {
	switch {
	case len(s) < 24:
		dst = append(dst, 0x60|byte(len(s)))
	case len(s) < 256:
		dst = append(dst, 0x78, byte(len(s)))
	default:
		return abi.AppendString(dst, s)
	}
	return append(dst, s...)
}
