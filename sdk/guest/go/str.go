package nodb

import "unsafe"

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

// needsEscape reports whether key contains '~' or '/'.
func needsEscape(key string) bool {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '~' || c == '/' {
			return true
		}
	}
	return false
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
	n, esc := 0, false
	for _, k := range keys {
		e := escapedLen(k)
		n += 1 + e
		esc = esc || e != len(k)
	}
	if n == 0 {
		return ""
	}
	b := newBytes(n)
	i := 0
	for _, k := range keys {
		b[i] = '/'
		i++
		if esc {
			i += len(appendEscaped(b[i:i], k))
		} else {
			i += copy(b[i:], k)
		}
	}
	return unsafe.String(&b[0], n)
}
