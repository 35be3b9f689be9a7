package nodb

import (
	"encoding/binary"
	"unsafe"
)

// Strings without an allocation each. Inside WebAssembly a Go heap
// allocation costs a few hundred nanoseconds (mallocgc and its helpers are
// a dozen calls, each paying the Go wasm calling convention), which is as
// much as the rest of a small handler. So the strings the SDK makes per
// event (Event.Str, Path, Escape, map keys) are carved out of chunks of
// memory instead: one real allocation per chunk.
//
// This is not aliasing: a string's bytes are written once, before the
// string exists, and never again (the chunk is only ever cut further on,
// never reused). A kept string keeps its whole chunk alive, which the
// garbage collector handles as for any interior pointer; the host discards
// the guest at every epoch boundary anyway.

// chunkSize is the size of one chunk. Strings longer than maxChunked are
// allocated on their own.
const (
	chunkSize  = 8 << 10
	maxChunked = 1 << 10
)

// chunks hands out never-reused pieces of larger allocations.
type chunks struct{ free []byte }

// alloc returns n fresh bytes (n > 0) that no other call returns. The bytes
// are zero or hold garbage from nowhere else: callers overwrite them all.
func (c *chunks) alloc(n int) []byte {
	if n > len(c.free) {
		if n > maxChunked {
			return make([]byte, n)
		}
		// Allocate before reading c.free again: a goroutine switch inside
		// make (the only call here) then cannot hand the same bytes out
		// twice.
		f := make([]byte, chunkSize)
		c.free = f
	}
	b := c.free[:n:n]
	c.free = c.free[n:]
	return b
}

// str returns a copy of b as a string.
func (c *chunks) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	d := c.alloc(len(b))
	copy(d, b)
	return unsafe.String(&d[0], len(d))
}

// needsEscape reports whether key contains '~' or '/'. Inside Wasm every
// iteration of a Go loop costs a pass through the function's dispatch loop
// and the host's fuel check, so the bytes are tested 8 (or 4) at a time
// with overlapping loads: no loop at all for keys shorter than 16 bytes.
func needsEscape(key string) bool {
	n := len(key)
	if n < 4 {
		for i := 0; i < n; i++ {
			if c := key[i]; c == '~' || c == '/' {
				return true
			}
		}
		return false
	}
	b := []byte(key) // no copy: the compiler sees it is only read
	le := binary.LittleEndian
	if n < 8 {
		return escapeIn32(le.Uint32(b)) || escapeIn32(le.Uint32(b[n-4:]))
	}
	for i := 0; i < n-8; i += 8 {
		if escapeIn64(le.Uint64(b[i:])) {
			return true
		}
	}
	return escapeIn64(le.Uint64(b[n-8:]))
}

// escapeIn64 reports whether one of the 8 bytes of w is '~' or '/': a byte
// equal to c is a zero byte of w^c..c, found by the borrow it causes
// (Hacker's Delight, 6-1; exact as a whole, whatever the other bytes).
func escapeIn64(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	t, s := w^(ones*'~'), w^(ones*'/')
	return ((t-ones)&^t|(s-ones)&^s)&highs != 0
}

// escapeIn32 is escapeIn64 for 4 bytes.
func escapeIn32(w uint32) bool {
	const ones, highs = 0x01010101, 0x80808080
	t, s := w^(ones*'~'), w^(ones*'/')
	return ((t-ones)&^t|(s-ones)&^s)&highs != 0
}

// appendEscaped appends key escaped as a path token.
func appendEscaped(dst []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; c {
		case '~':
			dst = append(dst, '~', '0')
		case '/':
			dst = append(dst, '~', '1')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// escapedLen returns the length of key escaped as a path token.
func escapedLen(key string) int {
	n := len(key)
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '~' || c == '/' {
			n++
		}
	}
	return n
}

// Escape turns a map key into a path token ("/" becomes "~1", "~" becomes
// "~0"), so "/todos/"+Escape(id) is safe for any id. A key without either
// character is returned as it is.
func Escape(key string) string {
	if !needsEscape(key) {
		return key
	}
	b := appendEscaped(newBytes(escapedLen(key))[:0], key)
	return unsafe.String(&b[0], len(b))
}

// Path joins map keys (or array indexes) into a JSON Pointer, escaping each
// one: Path("todos", id, "done") is "/todos/"+Escape(id)+"/done", and
// Path() is "", the root. Building a path this way costs one copy and no
// allocation of its own inside WebAssembly, where the concatenation costs
// one allocation per +.
func Path(keys ...string) string {
	n := 0
	for _, k := range keys {
		n += 1 + len(k)
	}
	if n == 0 {
		return ""
	}
	// Each key is copied and tested for '~' and '/' as it passes: up to 16
	// bytes with two overlapping loads and stores of 4 or 8 bytes (see
	// needsEscape), no loop and no call. Inside Wasm a call to a Go
	// function costs more than all of that, so this is written out here.
	b := newBytes(n)
	le := binary.LittleEndian
	i, esc := 0, false
	for _, k := range keys {
		b[i] = '/'
		i++
		src, dst := []byte(k), b[i:i+len(k)] // no copy of k: only read
		switch l := len(k); {
		case l > 16:
			copy(dst, src)
			esc = esc || needsEscape(k)
		case l >= 8:
			x, y := le.Uint64(src), le.Uint64(src[l-8:])
			le.PutUint64(dst, x)
			le.PutUint64(dst[l-8:], y)
			esc = esc || escapeIn64(x) || escapeIn64(y)
		case l >= 4:
			x, y := le.Uint32(src), le.Uint32(src[l-4:])
			le.PutUint32(dst, x)
			le.PutUint32(dst[l-4:], y)
			esc = esc || escapeIn32(x) || escapeIn32(y)
		default:
			for j := range l {
				c := src[j]
				dst[j] = c
				esc = esc || c == '~' || c == '/'
			}
		}
		i += len(k)
	}
	if esc { // rare: start again, escaping (the bytes in b are wasted)
		return pathEscaped(keys)
	}
	return unsafe.String(&b[0], n)
}

// pathEscaped is Path for keys of which some need escaping.
func pathEscaped(keys []string) string {
	n := 0
	for _, k := range keys {
		n += 1 + escapedLen(k)
	}
	b := newBytes(n)[:0]
	for _, k := range keys {
		b = appendEscaped(append(b, '/'), k)
	}
	return unsafe.String(&b[0], n)
}
