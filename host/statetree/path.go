package statetree

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Path is a parsed RFC 6901 JSON Pointer: the unescaped reference tokens, in
// order from the root. The empty Path is the whole document. Parse a
// pointer once with ParsePath and reuse the Path on hot paths.
//
// A Path is a plain slice: treat it as immutable once shared (Child copies).
type Path []string

// ParsePath parses an RFC 6901 JSON Pointer such as "/todos/a1/done".
// "~1" decodes to "/" and "~0" to "~"; any other "~" sequence, a pointer not
// starting with "/" (except the empty pointer, the root), invalid UTF-8 and
// forbidden keys (see ForbiddenKeys) are errors.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return Path{}, nil
	}
	return AppendPath(make(Path, 0, strings.Count(s, "/")), s)
}

// AppendPath is ParsePath appending the tokens to dst, so that a caller
// parsing many pointers can reuse one Path (AppendPath(p[:0], s)) and parse
// without allocating: tokens are substrings of s unless they hold an escape.
// On error it returns dst unchanged.
func AppendPath(dst Path, s string) (Path, error) {
	if s == "" {
		return dst, nil
	}
	if s[0] != '/' {
		return dst, fmt.Errorf("statetree: invalid JSON pointer %q: must be empty or start with \"/\"", s)
	}
	if !utf8.ValidString(s) {
		return dst, fmt.Errorf("statetree: invalid JSON pointer %q: %w", s, ErrInvalidUTF8)
	}
	p := dst
	for rest := s[1:]; ; {
		tok := rest
		i := strings.IndexByte(rest, '/')
		if i >= 0 {
			tok, rest = rest[:i], rest[i+1:]
		}
		if strings.IndexByte(tok, '~') >= 0 {
			var b strings.Builder
			for i := 0; i < len(tok); i++ {
				c := tok[i]
				if c != '~' {
					b.WriteByte(c)
					continue
				}
				if i+1 < len(tok) && tok[i+1] == '0' {
					b.WriteByte('~')
				} else if i+1 < len(tok) && tok[i+1] == '1' {
					b.WriteByte('/')
				} else {
					return dst, fmt.Errorf("statetree: invalid JSON pointer %q: \"~\" must be followed by \"0\" or \"1\"", s)
				}
				i++
			}
			tok = b.String()
		}
		if err := checkToken(tok); err != nil {
			return dst, err
		}
		p = append(p, tok)
		if i < 0 {
			return p, nil
		}
	}
}

// Pointer is a parsed RFC 6901 JSON Pointer that keeps the text it was
// parsed from. Tx.SetPointer and Tx.RemovePointer record ops whose paths
// are that text or a prefix of it rather than strings built again from the
// tokens: ParsePath accepts no escapes but "~0" and "~1", which
// Path.String writes back the same way, so the text of a pointer's first k
// tokens is exactly the Path.String of those tokens. The zero Pointer is
// the root. Parse reuses the Pointer's tokens slice, so a host function
// that keeps one Pointer parses without allocating.
type Pointer struct {
	text string
	path Path
}

// Parse sets q to the pointer s, parsed as ParsePath does. On error q is
// the root. Parsing the very string q holds (the same bytes in memory, not
// only equal ones) does nothing: strings are immutable, and host functions
// hand a guest's repeated path on as the same string, so an event that
// reads a path and then writes it parses it once.
func (q *Pointer) Parse(s string) error {
	if len(s) == len(q.text) && len(s) > 0 && unsafe.StringData(s) == unsafe.StringData(q.text) {
		return nil
	}
	p, err := AppendPath(q.path[:0], s)
	if err != nil {
		q.text, q.path = "", q.path[:0]
		return err
	}
	q.text, q.path = s, p
	return nil
}

// Path returns q's tokens. The slice is q's: the next Parse overwrites it,
// and the caller must not change it.
func (q *Pointer) Path() Path { return q.path }

// String returns the text q was parsed from.
func (q *Pointer) String() string { return q.text }

// checkToken is checkKey for a key already checked to be valid UTF-8: a
// token of a valid pointer (its substrings, and the unescaped forms of
// those, are valid too) or a map key the CBOR decoder read.
func checkToken(tok string) error {
	if len(tok) >= 9 && len(tok) <= 11 {
		switch tok {
		case "__proto__", "constructor", "prototype":
			return &forbiddenKeyError{tok}
		}
	}
	return nil
}

// MustPath is ParsePath for constant pointers in Go code; it panics on error.
func MustPath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns p as an RFC 6901 JSON Pointer, escaping "~" and "/".
// It sizes the string exactly in one pass over the bytes and, if nothing
// needs escaping, copies the tokens whole.
func (p Path) String() string {
	n, esc := 0, 0
	for _, tok := range p {
		n += 1 + len(tok)
		for i := 0; i < len(tok); i++ {
			if tok[i] == '~' || tok[i] == '/' {
				esc++
			}
		}
	}
	if n == 0 {
		return ""
	}
	b := make([]byte, 0, n+esc)
	for _, tok := range p {
		b = append(b, '/')
		if esc == 0 {
			b = append(b, tok...)
			continue
		}
		for i := 0; i < len(tok); i++ {
			switch tok[i] {
			case '~':
				b = append(b, "~0"...)
			case '/':
				b = append(b, "~1"...)
			default:
				b = append(b, tok[i])
			}
		}
	}
	return unsafeString(b)
}

// Child returns a new Path with tok appended; p is not modified.
func (p Path) Child(tok string) Path {
	q := make(Path, len(p), len(p)+1)
	copy(q, p)
	return append(q, tok)
}

// Index returns a new Path with array index i appended.
func (p Path) Index(i int) Path { return p.Child(strconv.Itoa(i)) }

// pointer returns the JSON Pointer of the first n tokens of p.
func (p Path) pointer(n int) string { return p[:n].String() }

// arrayIndex parses an array index token: "0" or a decimal without leading
// zeros. "-" (the end of the array) gives n. ok is false for anything else.
func arrayIndex(tok string, n int) (int, bool) {
	if tok == "-" {
		return n, true
	}
	if tok == "" || len(tok) > 10 || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	i := 0
	for j := 0; j < len(tok); j++ {
		c := tok[j]
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}
