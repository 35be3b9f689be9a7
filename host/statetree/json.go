package statetree

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// FromJSON parses JSON text (RFC 8259) into a Value.
//
// Numbers without a fraction or exponent that fit in an int64 become ints;
// all other numbers become floats (a number too large for a float64 is an
// error). Strings must be valid UTF-8, and \u escapes must not leave a lone
// surrogate. A duplicate key in an object is an error (not last-wins), as are
// forbidden keys (ForbiddenKeys), nesting deeper than MaxDepth, and anything
// but whitespace after the value. Errors give the byte offset.
func FromJSON(data []byte) (Value, error) {
	p := jsonParser{data: data}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return null, err
	}
	p.ws()
	if p.pos != len(p.data) {
		return null, p.errorf("unexpected data after the value")
	}
	return v, nil
}

type jsonParser struct {
	data []byte
	pos  int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("statetree: invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (Value, error) {
	if p.pos >= len(p.data) {
		return null, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		return stringValue(s), err
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return valTrue, p.literal("true")
	case c == 'f':
		return valFalse, p.literal("false")
	case c == 'n':
		return null, p.literal("null")
	default:
		return null, p.errorf("unexpected character %q", c)
	}
}

func (p *jsonParser) literal(lit string) error {
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return p.errorf("invalid literal, expected %q", lit)
	}
	p.pos += len(lit)
	return nil
}

func (p *jsonParser) object(depth int) (Value, error) {
	if depth > MaxDepth {
		return null, p.errorf("nesting deeper than %d", MaxDepth)
	}
	p.pos++ // {
	var es []entry
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return EmptyMap(), nil
	}
	for {
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return null, p.errorf("expected a string key")
		}
		at := p.pos
		k, err := p.str()
		if err != nil {
			return null, err
		}
		if err := checkKey(k); err != nil {
			p.pos = at
			return null, p.errorf("%v", err)
		}
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return null, p.errorf("expected ':'")
		}
		p.pos++
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			return null, err
		}
		es = append(es, entry{k, v})
		p.ws()
		if p.pos >= len(p.data) {
			return null, p.errorf("unexpected end of input in an object")
		}
		if p.data[p.pos] == '}' {
			p.pos++
			break
		}
		if p.data[p.pos] != ',' {
			return null, p.errorf("expected ',' or '}'")
		}
		p.pos++
	}
	sortEntries(es)
	for i := 1; i < len(es); i++ {
		if es[i].key == es[i-1].key {
			return null, fmt.Errorf("statetree: invalid JSON: duplicate key %q", es[i].key)
		}
	}
	return mapValue(buildTrie(es)), nil
}

func (p *jsonParser) array(depth int) (Value, error) {
	if depth > MaxDepth {
		return null, p.errorf("nesting deeper than %d", MaxDepth)
	}
	p.pos++ // [
	var es []Value
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return Value{kind: KindArray}, nil
	}
	for {
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			return null, err
		}
		es = append(es, v)
		p.ws()
		if p.pos >= len(p.data) {
			return null, p.errorf("unexpected end of input in an array")
		}
		if p.data[p.pos] == ']' {
			p.pos++
			break
		}
		if p.data[p.pos] != ',' {
			return null, p.errorf("expected ',' or ']'")
		}
		p.pos++
	}
	return arrayOwned(slicesClip(es)), nil
}

func slicesClip(es []Value) []Value { return es[:len(es):len(es)] }

func (p *jsonParser) number() (Value, error) {
	start := p.pos
	d := p.data
	i := p.pos
	if d[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		return i - j
	}
	intStart := i
	if n := digits(); n == 0 {
		p.pos = i
		return null, p.errorf("invalid number")
	} else if n > 1 && d[intStart] == '0' {
		p.pos = intStart
		return null, p.errorf("invalid number: leading zero")
	}
	isFloat := false
	if i < len(d) && d[i] == '.' {
		i++
		isFloat = true
		if digits() == 0 {
			p.pos = i
			return null, p.errorf("invalid number: no digits after '.'")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		isFloat = true
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return null, p.errorf("invalid number: no digits in the exponent")
		}
	}
	p.pos = i
	s := string(d[start:i])
	if !isFloat {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return Int(n), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		p.pos = start
		return null, p.errorf("number %s is out of range", s)
	}
	return NewFloat(f)
}

// str parses a JSON string at p.pos (which is '"').
func (p *jsonParser) str() (string, error) {
	p.pos++
	d := p.data
	start := p.pos
	// Fast path: no escapes.
	for i := start; i < len(d); i++ {
		c := d[i]
		if c == '"' {
			if !utf8.Valid(d[start:i]) {
				return "", p.errorf("%v", ErrInvalidUTF8)
			}
			p.pos = i + 1
			return string(d[start:i]), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	var b []byte
	i := start
	for {
		if i >= len(d) {
			p.pos = i
			return "", p.errorf("unterminated string")
		}
		c := d[i]
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				p.pos = start
				return "", p.errorf("%v", ErrInvalidUTF8)
			}
			p.pos = i + 1
			return string(b), nil
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character %#x in a string", c)
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d) {
			p.pos = i
			return "", p.errorf("unterminated string")
		}
		e := d[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(d, i)
			if !ok {
				p.pos = i
				return "", p.errorf("invalid \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				var r2 rune = -1
				if i+6 <= len(d) && d[i] == '\\' && d[i+1] == 'u' {
					r2, _ = hex4(d, i+2)
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					p.pos = i
					return "", p.errorf("lone UTF-16 surrogate in a \\u escape")
				}
				i += 6
			}
			b = utf8.AppendRune(b, r)
		default:
			p.pos = i - 1
			return "", p.errorf("invalid escape \\%c", e)
		}
	}
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// MarshalJSON returns v as canonical JSON: no insignificant whitespace, map
// keys in bytewise order, strings escaped minimally (", \ and control
// characters only; \n-style escapes where JSON has them, else \u00XX), ints
// in decimal, and floats in the shortest form that parses back to the same
// float64, with ".0" appended if that form would otherwise read as an int
// (so 1.0 stays a float: JSON → Value → JSON → Value is stable). Like
// JavaScript, floats at or above 1e21 or below 1e-6 use an exponent.
func (v Value) MarshalJSON() ([]byte, error) {
	return v.AppendJSON(nil), nil
}

// AppendJSON appends v's canonical JSON (see MarshalJSON) to buf.
func (v Value) AppendJSON(buf []byte) []byte {
	switch v.kind {
	case KindNull:
		return append(buf, "null"...)
	case KindBool:
		if v.bits != 0 {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	case KindInt:
		return strconv.AppendInt(buf, int64(v.bits), 10)
	case KindFloat:
		return appendFloat(buf, math.Float64frombits(v.bits))
	case KindString:
		return appendString(buf, v.sv())
	case KindArray:
		buf = append(buf, '[')
		for i, e := range v.elems() {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = e.AppendJSON(buf)
		}
		return append(buf, ']')
	}
	buf = append(buf, '{')
	first := true
	v.node().each(func(k string, e Value) bool {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(appendString(buf, k), ':')
		buf = e.AppendJSON(buf)
		return true
	})
	return append(buf, '}')
}

func appendFloat(buf []byte, f float64) []byte {
	start := len(buf)
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// Like JavaScript: 1e-07 → 1e-7.
		if n := len(buf); n-start >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
		return buf
	}
	for _, c := range buf[start:] {
		if c == '.' {
			return buf
		}
	}
	return append(buf, ".0"...)
}

const hexDigits = "0123456789abcdef"

func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		}
		start = i + 1
	}
	return append(append(buf, s[start:]...), '"')
}

// UnmarshalJSON sets *v from JSON text, as FromJSON.
func (v *Value) UnmarshalJSON(data []byte) error {
	x, err := FromJSON(data)
	if err != nil {
		return err
	}
	*v = x
	return nil
}

// MarshalJSON returns the op as an RFC 6902 operation object:
// {"op":"add","path":"/a","value":1}; remove has no "value".
func (o Op) MarshalJSON() ([]byte, error) {
	return o.AppendJSON(nil), nil
}

// AppendPatchJSON appends ops as a JSON array: an RFC 6902 patch.
func AppendPatchJSON(buf []byte, ops []Op) []byte {
	buf = append(buf, '[')
	for i, op := range ops {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = op.AppendJSON(buf)
	}
	return append(buf, ']')
}

// AppendJSON appends the op's JSON (see Op.MarshalJSON) to buf.
func (o Op) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"op":`...)
	buf = appendString(buf, o.Op)
	buf = append(buf, `,"path":`...)
	buf = appendString(buf, o.Path)
	if o.Op != OpRemove {
		buf = append(buf, `,"value":`...)
		buf = o.Value.AppendJSON(buf)
	}
	return append(buf, '}')
}

// UnmarshalJSON parses an RFC 6902 operation object with op add, remove or
// replace. Other members are ignored.
func (o *Op) UnmarshalJSON(data []byte) error {
	v, err := FromJSON(data)
	if err != nil {
		return err
	}
	op, _ := v.Lookup("op")
	path, hasPath := v.Lookup("path")
	val, hasVal := v.Lookup("value")
	switch {
	case v.kind != KindMap:
		return errors.New("statetree: a JSON Patch op must be an object")
	case op.kind != KindString || (op.sv() != OpAdd && op.sv() != OpRemove && op.sv() != OpReplace):
		return fmt.Errorf("statetree: unsupported JSON Patch op %s", op)
	case !hasPath || path.kind != KindString:
		return errors.New("statetree: JSON Patch op without a string \"path\"")
	case !hasVal && op.sv() != OpRemove:
		return fmt.Errorf("statetree: JSON Patch %s op without a \"value\"", op.sv())
	}
	*o = Op{Op: op.sv(), Path: path.sv(), Value: val}
	return nil
}

// FromGo converts a Go value into a Value. It accepts nil, bool, the int
// and uint types (uints above MaxInt64 are an error), float32 and float64
// (finite only), string, json.Number, Value, []any, []Value,
// map[string]any and map[string]Value, nested to at most MaxDepth. Map keys
// and strings are checked as by FromJSON.
func FromGo(x any) (Value, error) { return fromGo(x, 0) }

func fromGo(x any, depth int) (Value, error) {
	switch x := x.(type) {
	case nil:
		return null, nil
	case Value:
		if int(x.depth())+depth > MaxDepth {
			return null, errTooDeep
		}
		return x, nil
	case bool:
		return Bool(x), nil
	case int:
		return Int(int64(x)), nil
	case int8:
		return Int(int64(x)), nil
	case int16:
		return Int(int64(x)), nil
	case int32:
		return Int(int64(x)), nil
	case int64:
		return Int(x), nil
	case uint:
		return fromUint(uint64(x))
	case uint8:
		return Int(int64(x)), nil
	case uint16:
		return Int(int64(x)), nil
	case uint32:
		return Int(int64(x)), nil
	case uint64:
		return fromUint(x)
	case float32:
		return NewFloat(float64(x))
	case float64:
		return NewFloat(x)
	case string:
		return NewString(x)
	case json.Number:
		return FromJSON([]byte(x))
	}
	if depth >= MaxDepth {
		return null, errTooDeep
	}
	switch x := x.(type) {
	case []any:
		es := make([]Value, len(x))
		for i, e := range x {
			v, err := fromGo(e, depth+1)
			if err != nil {
				return null, err
			}
			es[i] = v
		}
		return arrayOwned(es), nil
	case []Value:
		return fromGo(arrayOwned(slices.Clone(x)), depth)
	case map[string]any:
		es := make([]entry, 0, len(x))
		for k, e := range x {
			if err := checkKey(k); err != nil {
				return null, err
			}
			v, err := fromGo(e, depth+1)
			if err != nil {
				return null, err
			}
			es = append(es, entry{k, v})
		}
		return mapFromEntries(es), nil
	case map[string]Value:
		m, err := Map(x)
		if err != nil {
			return null, err
		}
		return fromGo(m, depth)
	}
	return null, fmt.Errorf("statetree: cannot convert a Go %T to a Value", x)
}

func fromUint(u uint64) (Value, error) {
	if u > math.MaxInt64 {
		return null, fmt.Errorf("statetree: integer %d does not fit in an int64", u)
	}
	return Int(int64(u)), nil
}

// ToGo converts v into plain Go values: nil, bool, int64, float64, string,
// []any and map[string]any.
func (v Value) ToGo() any {
	switch v.kind {
	case KindBool:
		return v.Bool()
	case KindInt:
		return v.Int()
	case KindFloat:
		return v.Float()
	case KindString:
		return v.sv()
	case KindArray:
		out := make([]any, v.Len())
		for i, e := range v.elems() {
			out[i] = e.ToGo()
		}
		return out
	case KindMap:
		out := make(map[string]any, v.Len())
		v.node().each(func(k string, e Value) bool { out[k] = e.ToGo(); return true })
		return out
	}
	return nil
}
