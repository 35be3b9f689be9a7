package abi

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrJSON is returned by AppendJSONAsCBOR for text that is not one valid JSON
// value (RFC 8259) or that nests deeper than MaxDepth.
var ErrJSON = errors.New("abi: invalid JSON")

// AppendJSONAsCBOR converts one JSON value to CBOR and appends it to dst. The
// mapping is fixed by ABI v1 (ABI.md, "Values"):
//
//   - null, true, false become the CBOR simple values;
//   - a number without fraction or exponent that fits in int64 becomes an
//     integer (shortest head); any other number becomes a float64 (0xfb);
//   - a string becomes a text string (invalid UTF-8 is replaced by U+FFFD,
//     as encoding/json does);
//   - arrays and objects become definite-length arrays and maps, in source
//     order (object keys are not sorted or de-duplicated).
func AppendJSONAsCBOR(dst []byte, js []byte) ([]byte, error) {
	return appendJSONAsCBOR(dst, jsonParser{in: js})
}

func appendJSONAsCBOR(dst []byte, p jsonParser) ([]byte, error) {
	start := len(dst)
	out, err := p.value(dst, 0)
	if err != nil {
		return dst[:start], err
	}
	p.ws()
	if p.i != len(p.in) {
		return dst[:start], ErrJSON
	}
	return out, nil
}

type jsonParser struct {
	in      []byte
	i       int
	generic bool // every container member through value (tests compare the two paths)
}

func (p *jsonParser) ws() {
	for p.i < len(p.in) && isSpace(p.in[p.i]) {
		p.i++
	}
}

func (p *jsonParser) lit(s string) bool {
	if len(p.in)-p.i >= len(s) && string(p.in[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *jsonParser) value(dst []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, ErrJSON
	}
	p.ws()
	if p.i >= len(p.in) {
		return dst, ErrJSON
	}
	switch c := p.in[p.i]; {
	case c == '{':
		return p.container(dst, depth, '}', MajorMap)
	case c == '[':
		return p.container(dst, depth, ']', MajorArray)
	case c == '"':
		return p.str(dst)
	case c == 't':
		if p.lit("true") {
			return append(dst, CBORTrue), nil
		}
	case c == 'f':
		if p.lit("false") {
			return append(dst, CBORFalse), nil
		}
	case c == 'n':
		if p.lit("null") {
			return append(dst, CBORNull), nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	}
	return dst, ErrJSON
}

// skipWS returns the index of the first byte at or after i that is not JSON
// whitespace.
func skipWS(in []byte, i int) int {
	for i < len(in) && in[i] <= ' ' && isSpace(in[i]) {
		i++
	}
	return i
}

// smallInt parses the integer at in[i] if it has at most 18 digits (so it
// fits int64 with no overflow check) and no fraction or exponent; ok is
// false for anything else, valid or not.
func smallInt(in []byte, i int) (v int64, end int, ok bool) {
	neg := i < len(in) && in[i] == '-'
	if neg {
		i++
	}
	s := i
	for i < len(in) && in[i] >= '0' && in[i] <= '9' {
		v = v*10 + int64(in[i]-'0')
		i++
	}
	switch nd := i - s; {
	case nd == 0 || nd > 18 || (nd > 1 && in[s] == '0'):
		return 0, 0, false
	case i < len(in) && (in[i] == '.' || in[i] == 'e' || in[i] == 'E'):
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i, true
}

// setCount writes the head of the container of n items whose head byte was
// reserved at dst[head], shifting the body when the count needs a longer
// head.
func setCount(dst []byte, head int, major byte, n uint64) []byte {
	if n < 24 {
		dst[head] = major<<5 | byte(n)
		return dst
	}
	var hb [9]byte
	h := AppendHead(hb[:0], major, n)
	extra := len(h) - 1
	dst = append(dst, h[1:]...) // grow by extra bytes
	copy(dst[head+len(h):], dst[head+1:len(dst)-extra])
	copy(dst[head:], h)
	return dst
}

// container parses an array or object. It reserves one byte for the head
// and shifts the body when the count needs a longer head (setCount). The
// index is kept in a local, and the usual members of a payload are
// converted in line (see member).
func (p *jsonParser) container(dst []byte, depth int, end byte, major byte) ([]byte, error) {
	in := p.in
	i := skipWS(in, p.i+1) // after '[' or '{'
	head := len(dst)
	dst = append(dst, 0)
	n := uint64(0)
	if i < len(in) && in[i] == end {
		p.i = i + 1
		return setCount(dst, head, major, 0), nil
	}
	for {
		var err error
		if major == MajorMap {
			if i >= len(in) || in[i] != '"' {
				return dst, ErrJSON
			}
			if dst, i, err = p.strAt(dst, i); err != nil {
				return dst, err
			}
			i = skipWS(in, i)
			if i >= len(in) || in[i] != ':' {
				return dst, ErrJSON
			}
			i = skipWS(in, i+1)
		}
		if dst, i, err = p.member(dst, i, depth); err != nil {
			return dst, err
		}
		n++
		i = skipWS(in, i)
		if i >= len(in) {
			return dst, ErrJSON
		}
		if in[i] == ',' {
			i = skipWS(in, i+1)
			continue
		}
		if in[i] == end {
			i++
			break
		}
		return dst, ErrJSON
	}
	p.i = i
	return setCount(dst, head, major, n), nil
}

// member converts the value at in[i] of a container at depth. Plain
// strings, true, false, null and integers of up to 18 digits are converted
// here; anything else (floats, longer integers, containers, invalid text)
// goes through value, which gives the same bytes and errors for all of
// them. With p.generic every member goes through value: FuzzJSONObject
// holds the two paths to each other.
func (p *jsonParser) member(dst []byte, i, depth int) ([]byte, int, error) {
	in := p.in
	if depth >= MaxDepth { // value would refuse the member
		return dst, i, ErrJSON
	}
	if !p.generic && i < len(in) {
		switch c := in[i]; {
		case c == '"':
			return p.strAt(dst, i)
		case c == 't' && len(in)-i >= 4 && string(in[i:i+4]) == "true":
			return append(dst, CBORTrue), i + 4, nil
		case c == 'f' && len(in)-i >= 5 && string(in[i:i+5]) == "false":
			return append(dst, CBORFalse), i + 5, nil
		case c == 'n' && len(in)-i >= 4 && string(in[i:i+4]) == "null":
			return append(dst, CBORNull), i + 4, nil
		default:
			if v, end, ok := smallInt(in, i); ok {
				return AppendInt(dst, v), end, nil
			}
		}
	}
	p.i = i
	dst, err := p.value(dst, depth+1)
	return dst, p.i, err
}

// strStop marks the bytes that end str's fast scan: the closing quote, a
// backslash, control characters (invalid in JSON strings) and the bytes of
// multi-byte UTF-8 sequences (>= 0x80).
var strStop = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return t
}()

// str converts the string at p.i. The fast path is one table-driven scan
// that copies the bytes as they are: a string without escapes is checked for
// valid UTF-8 only if it has bytes >= 0x80 (the ASCII of the usual payload
// field needs no check at all). Anything else goes through strSlow.
func (p *jsonParser) str(dst []byte) ([]byte, error) {
	dst, i, err := p.strAt(dst, p.i)
	p.i = i
	return dst, err
}

// strAt is str for the string whose opening quote is at i; it returns the
// index after the string.
func (p *jsonParser) strAt(dst []byte, i int) ([]byte, int, error) {
	in := p.in
	start := i + 1 // after the opening quote
	i, high := start, false
	for {
		for i < len(in) && !strStop[in[i]] {
			i++
		}
		if i >= len(in) || in[i] < utf8.RuneSelf {
			break
		}
		high = true
		i++
	}
	if i < len(in) && in[i] == '"' && (!high || utf8.Valid(in[start:i])) {
		if n := i - start; n < 24 {
			dst = append(dst, MajorText<<5|byte(n))
		} else {
			dst = AppendHead(dst, MajorText, uint64(n))
		}
		return append(dst, in[start:i]...), i + 1, nil
	}
	p.i = start
	dst, err := p.strSlow(dst)
	return dst, p.i, err
}

// strSlow converts the string whose first byte is at p.i, decoding escapes
// and replacing invalid UTF-8 with U+FFFD.
func (p *jsonParser) strSlow(dst []byte) ([]byte, error) {
	var buf []byte
	for {
		if p.i >= len(p.in) {
			return dst, ErrJSON
		}
		c := p.in[p.i]
		switch {
		case c == '"':
			p.i++
			dst = AppendHead(dst, MajorText, uint64(len(buf)))
			return append(dst, buf...), nil
		case c < 0x20:
			return dst, ErrJSON
		case c == '\\':
			if p.i+1 >= len(p.in) {
				return dst, ErrJSON
			}
			e := p.in[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return dst, ErrJSON
				}
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					save := p.i
					if p.lit(`\u`) {
						if x, ok := p.hex4(); ok {
							r2 = x
						}
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
					} else {
						p.i = save
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return dst, ErrJSON
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.in[p.i:])
			buf = utf8.AppendRune(buf, r)
			p.i += size
		}
	}
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.in)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.in[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

func (p *jsonParser) number(dst []byte) ([]byte, error) {
	start := p.i
	isInt := true
	if p.in[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		s := p.i
		for p.i < len(p.in) && p.in[p.i] >= '0' && p.in[p.i] <= '9' {
			p.i++
		}
		return p.i - s
	}
	intStart := p.i
	nd := digits()
	if nd == 0 || (nd > 1 && p.in[intStart] == '0') {
		return dst, ErrJSON
	}
	if p.i < len(p.in) && p.in[p.i] == '.' {
		isInt = false
		p.i++
		if digits() == 0 {
			return dst, ErrJSON
		}
	}
	if p.i < len(p.in) && (p.in[p.i] == 'e' || p.in[p.i] == 'E') {
		isInt = false
		p.i++
		if p.i < len(p.in) && (p.in[p.i] == '+' || p.in[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return dst, ErrJSON
		}
	}
	s := p.in[start:p.i]
	if isInt && len(s) <= 20 {
		if v, ok := parseInt64(s); ok {
			return AppendInt(dst, v), nil
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return dst, ErrJSON
	}
	if math.IsInf(f, 0) {
		return dst, ErrJSON
	}
	return AppendFloat(dst, f), nil
}

func parseInt64(s []byte) (int64, bool) {
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var u uint64
	for _, c := range s {
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true //nolint:gosec // -u wraps correctly for 1<<63
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// AppendCBORAsJSON converts one CBOR data item within the JSON data model to
// JSON text and appends it to dst. Floats use the shortest representation
// that round-trips (strconv 'g' format, JSON-compatible). It returns the
// remaining bytes after the item.
func AppendCBORAsJSON(dst []byte, b []byte) ([]byte, []byte, error) {
	return cborToJSON(dst, b, 0)
}

var errCBOR = errors.New("abi: invalid CBOR value")

func cborToJSON(dst, b []byte, depth int) ([]byte, []byte, error) {
	if depth > MaxDepth {
		return dst, nil, errCBOR
	}
	major, info, arg, n, ok := ReadHead(b)
	if !ok {
		return dst, nil, errCBOR
	}
	b = b[n:]
	switch major {
	case MajorUint:
		return strconv.AppendUint(dst, arg, 10), b, nil
	case MajorNegInt:
		if arg > math.MaxInt64 {
			return dst, nil, errCBOR
		}
		return strconv.AppendInt(dst, -1-int64(arg), 10), b, nil
	case MajorText:
		if arg > uint64(len(b)) {
			return dst, nil, errCBOR
		}
		return appendJSONString(dst, b[:arg]), b[arg:], nil
	case MajorArray, MajorMap:
		open, close := byte('['), byte(']')
		if major == MajorMap {
			open, close = '{', '}'
		}
		dst = append(dst, open)
		for i := uint64(0); i < arg; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if major == MajorMap {
				if len(b) == 0 || b[0]>>5 != MajorText {
					return dst, nil, errCBOR
				}
				if dst, b, err = cborToJSON(dst, b, depth+1); err != nil {
					return dst, nil, err
				}
				dst = append(dst, ':')
			}
			if dst, b, err = cborToJSON(dst, b, depth+1); err != nil {
				return dst, nil, err
			}
		}
		return append(dst, close), b, nil
	case MajorSimple:
		switch info {
		case 20:
			return append(dst, "false"...), b, nil
		case 21:
			return append(dst, "true"...), b, nil
		case 22:
			return append(dst, "null"...), b, nil
		case 25, 26, 27:
			f := FloatValue(info, arg)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return dst, nil, errCBOR
			}
			return strconv.AppendFloat(dst, f, 'g', -1, 64), b, nil
		}
	}
	return dst, nil, errCBOR
}

const hexDigits = "0123456789abcdef"

func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
			i++
			continue
		case '\n':
			dst = append(dst, '\\', 'n')
			i++
			continue
		case '\r':
			dst = append(dst, '\\', 'r')
			i++
			continue
		case '\t':
			dst = append(dst, '\\', 't')
			i++
			continue
		}
		if c < 0x20 {
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
