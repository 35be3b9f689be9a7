package nodb

import (
	"math"
	"slices"
	"strconv"

	"github.com/nodb-dev/nodb/abi"
)

// Kind is the JSON type of a Value.
type Kind uint8

// Kinds of values.
const (
	KindMissing Kind = iota // no value (a failed lookup)
	KindNull
	KindBool
	KindInt
	KindFloat
	KindString
	KindArray
	KindMap
)

// Value is one CBOR-encoded value within the JSON data model, read without
// reflection. The zero Value is Missing; lookups on a Missing or mistyped
// Value return KindMissing or the zero of the asked type, never panic.
type Value struct{ b []byte }

// ValueOf wraps CBOR bytes (not copied) as a Value. It does not validate them
// beyond what each accessor needs.
func ValueOf(cbor []byte) Value { return Value{b: cbor} }

// Raw returns the value's CBOR bytes (aliased, not copied).
func (v Value) Raw() []byte { return v.b }

// Exists reports whether v is not Missing.
func (v Value) Exists() bool { return len(v.b) > 0 }

// Kind returns v's type.
func (v Value) Kind() Kind {
	if len(v.b) == 0 {
		return KindMissing
	}
	switch v.b[0] >> 5 {
	case abi.MajorUint, abi.MajorNegInt:
		return KindInt
	case abi.MajorText:
		return KindString
	case abi.MajorArray:
		return KindArray
	case abi.MajorMap:
		return KindMap
	case abi.MajorSimple:
		switch v.b[0] {
		case abi.CBORFalse, abi.CBORTrue:
			return KindBool
		case abi.CBORNull:
			return KindNull
		case abi.CBORFloat16, abi.CBORFloat32, abi.CBORFloat64:
			return KindFloat
		}
	}
	return KindMissing
}

// text returns the bytes of a text string.
func (v Value) text() ([]byte, bool) {
	t, _, ok := textAt(v.b, 0)
	return t, ok
}

// Str returns v as a string, or "".
func (v Value) Str() string {
	if t, ok := shortText(v.b); ok {
		return newString(t)
	}
	t, _ := v.text()
	return newString(t)
}

// shortText returns the bytes of b if b is a text string of less than 256
// bytes (a head of one or two bytes); ok is false for anything else,
// including longer texts.
func shortText(b []byte) (t []byte, ok bool) {
	if len(b) == 0 {
		return nil, false
	}
	n, start := int(b[0]&31), 1
	if b[0]>>5 != 3 || n >= 24 {
		if b[0] != 0x78 || len(b) < 2 {
			return nil, false
		}
		n, start = int(b[1]), 2
	}
	end := start + n
	return b[start:min(end, len(b))], end <= len(b)
}

// StrOK returns v as a string and whether it is one.
func (v Value) StrOK() (string, bool) {
	t, ok := v.text()
	return newString(t), ok
}

// Int returns v as an int64: integers, and floats with an integral value in
// range; otherwise 0.
func (v Value) Int() int64 {
	i, _ := v.IntOK()
	return i
}

// IntOK returns v as an int64 and whether it is one (see Int).
func (v Value) IntOK() (int64, bool) {
	major, info, arg, _, ok := abi.ReadHead(v.b)
	if !ok {
		return 0, false
	}
	switch major {
	case abi.MajorUint:
		if arg <= math.MaxInt64 {
			return int64(arg), true
		}
	case abi.MajorNegInt:
		if arg <= math.MaxInt64 {
			return -1 - int64(arg), true
		}
	case abi.MajorSimple:
		if info >= 25 && info <= 27 {
			f := abi.FloatValue(info, arg)
			if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
				return int64(f), true
			}
		}
	}
	return 0, false
}

// Float returns v as a float64 (integers convert), or 0.
func (v Value) Float() float64 {
	f, _ := v.FloatOK()
	return f
}

// FloatOK returns v as a float64 and whether it is a number.
func (v Value) FloatOK() (float64, bool) {
	major, info, arg, _, ok := abi.ReadHead(v.b)
	if !ok {
		return 0, false
	}
	switch major {
	case abi.MajorUint:
		return float64(arg), true
	case abi.MajorNegInt:
		return -1 - float64(arg), true
	case abi.MajorSimple:
		if info >= 25 && info <= 27 {
			return abi.FloatValue(info, arg), true
		}
	}
	return 0, false
}

// Bool returns v as a bool, or false.
func (v Value) Bool() bool { return len(v.b) > 0 && v.b[0] == abi.CBORTrue }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return len(v.b) > 0 && v.b[0] == abi.CBORNull }

// container returns the count and the bytes after the head of an array or
// map of the given major type.
func (v Value) container(major byte) (uint64, []byte, bool) {
	m, _, arg, n, ok := abi.ReadHead(v.b)
	if !ok || m != major {
		return 0, nil, false
	}
	return arg, v.b[n:], true
}

// next splits the first item off b (see skipItem).
func next(b []byte) (Value, []byte, bool) {
	n := skipItem(b, 0)
	if n < 0 {
		return Value{}, nil, false
	}
	return Value{b: b[:n:n]}, b[n:], true
}

// Len returns the number of items of an array or entries of a map, or 0.
func (v Value) Len() int {
	m, _, arg, _, ok := abi.ReadHead(v.b)
	if !ok || (m != abi.MajorArray && m != abi.MajorMap) {
		return 0
	}
	return int(arg)
}

// Key returns the value of key in a map (the first entry with that key), or
// Missing.
func (v Value) Key(key string) Value { return v.key(key) }

// Index returns item i of an array, or Missing.
func (v Value) Index(i int) Value {
	n, b, ok := v.container(abi.MajorArray)
	if !ok || i < 0 || uint64(i) >= n {
		return Value{}
	}
	var item Value
	for j := 0; j <= i; j++ {
		if item, b, ok = next(b); !ok {
			return Value{}
		}
	}
	return item
}

// Get follows a JSON Pointer from v: map keys, and array indexes for arrays.
// An invalid pointer gives Missing.
func (v Value) Get(path string) Value {
	for path != "" {
		tok, rest, ok := abi.NextToken(path)
		if !ok {
			return Value{}
		}
		switch v.Kind() {
		case KindMap:
			v = v.Key(abi.Unescape(tok))
		case KindArray:
			i, ok := abi.ArrayIndex(tok)
			if !ok || i < 0 {
				return Value{}
			}
			v = v.Index(i)
		default:
			return Value{}
		}
		path = rest
	}
	return v
}

// Each calls fn for every entry of a map, in encoding order, until fn
// returns false.
func (v Value) Each(fn func(key string, val Value) bool) { v.each(fn) }

// Items calls fn for every item of an array until fn returns false.
func (v Value) Items(fn func(i int, val Value) bool) {
	n, b, ok := v.container(abi.MajorArray)
	if !ok {
		return
	}
	for i := uint64(0); i < n; i++ {
		var val Value
		if val, b, ok = next(b); !ok || !fn(int(i), val) {
			return
		}
	}
}

// Keys returns the keys of a map in encoding order, or nil.
func (v Value) Keys() []string {
	if v.Kind() != KindMap {
		return nil
	}
	keys := make([]string, 0, v.Len())
	v.Each(func(k string, _ Value) bool {
		keys = append(keys, k)
		return true
	})
	return keys
}

// JSON returns v as JSON text ("" for Missing or malformed values).
func (v Value) JSON() string {
	b, _, err := abi.AppendCBORAsJSON(nil, v.b)
	if err != nil {
		return ""
	}
	return string(b)
}

// AppendCBOR implements Marshaler: the value's bytes, unchanged.
func (v Value) AppendCBOR(dst []byte) ([]byte, error) {
	if len(v.b) == 0 {
		return dst, &Error{Op: "encode", Status: abi.StatusInvalidValue}
	}
	return append(dst, v.b...), nil
}

// Marshaler is implemented by types that encode themselves as one CBOR value
// within the JSON data model (abi.AppendInt, abi.AppendString, ... help).
type Marshaler interface {
	AppendCBOR(dst []byte) ([]byte, error)
}

// MapValue is an ordered map built by Map.
type MapValue []any

// Map builds a map value from alternating string keys and values, keeping
// their order: Map("text", "milk", "done", false).
func Map(kv ...any) MapValue { return MapValue(kv) }

// AppendCBOR implements Marshaler.
func (m MapValue) AppendCBOR(dst []byte) ([]byte, error) {
	if len(m)%2 != 0 {
		return dst, ErrUnsupported
	}
	if n := len(m) / 2; n < 24 {
		dst = append(dst, abi.MajorMap<<5|byte(n))
	} else {
		dst = abi.AppendHead(dst, abi.MajorMap, uint64(n))
	}
	// Short keys and the common values are encoded in line: inside Wasm
	// each call costs about as much as the encoding.
	var err error
	for i := 0; i < len(m); i += 2 {
		k, ok := m[i].(string)
		if !ok {
			return dst, ErrUnsupported
		}
		if len(k) < 24 {
			dst = append(append(dst, abi.MajorText<<5|byte(len(k))), k...)
		} else {
			dst = appendText(dst, k)
		}
		switch x := m[i+1].(type) {
		case string:
			if len(x) < 24 {
				dst = append(append(dst, abi.MajorText<<5|byte(len(x))), x...)
			} else {
				dst = appendText(dst, x)
			}
		case bool:
			if x {
				dst = append(dst, abi.CBORTrue)
			} else {
				dst = append(dst, abi.CBORFalse)
			}
		default:
			if dst, err = AppendCBOR(dst, x); err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

// Field is one key and value of a map stored with State.SetFields. Make it
// with StrField, BoolField, IntField or FloatField.
type Field struct {
	key  string
	kind byte   // fieldStr, fieldBool, fieldInt or fieldFloat
	s    string // the string
	n    uint64 // the bool (0 or 1), the int64 or the float64's bits
}

// The kinds of Field.
const (
	fieldStr = iota
	fieldBool
	fieldInt
	fieldFloat
)

// StrField is a field with a string value.
func StrField(key, v string) Field { return Field{key: key, kind: fieldStr, s: v} }

// BoolField is a field with a boolean value.
func BoolField(key string, v bool) Field {
	f := Field{key: key, kind: fieldBool}
	if v {
		f.n = 1
	}
	return f
}

// IntField is a field with an integer value.
func IntField(key string, v int64) Field { return Field{key: key, kind: fieldInt, n: uint64(v)} }

// FloatField is a field with a number value (NaN and infinities are
// ErrUnsupported when the field is stored).
func FloatField(key string, v float64) Field {
	return Field{key: key, kind: fieldFloat, n: math.Float64bits(v)}
}

// appendFields appends the map of fields, in their order.
func appendFields(dst []byte, fields []Field) ([]byte, error) {
	if n := len(fields); n < 24 {
		dst = append(dst, abi.MajorMap<<5|byte(n))
	} else {
		dst = abi.AppendHead(dst, abi.MajorMap, uint64(n))
	}
	var err error
	for i := range fields {
		f := &fields[i]
		dst = appendText(dst, f.key)
		switch f.kind {
		case fieldStr:
			dst = appendText(dst, f.s)
		case fieldBool:
			dst = abi.AppendBool(dst, f.n != 0)
		case fieldInt:
			dst = abi.AppendInt(dst, int64(f.n))
		default:
			if dst, err = appendFloat(dst, math.Float64frombits(f.n)); err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

// ListValue is an array built by List.
type ListValue []any

// List builds an array value.
func List(items ...any) ListValue { return ListValue(items) }

// AppendCBOR implements Marshaler.
func (l ListValue) AppendCBOR(dst []byte) ([]byte, error) {
	return appendSlice(dst, []any(l))
}

// JSON is a value given as JSON text; it is converted to CBOR when set.
type JSON string

// AppendCBOR implements Marshaler.
func (j JSON) AppendCBOR(dst []byte) ([]byte, error) {
	return abi.AppendJSONAsCBOR(dst, []byte(j))
}

// AppendCBOR appends the CBOR encoding of v (see State.Set for the supported
// types) to dst, without reflection.
func AppendCBOR(dst []byte, v any) ([]byte, error) {
	if b, ok := appendCommon(dst, v); ok {
		return b, nil
	}
	switch x := v.(type) {
	case nil:
		return abi.AppendNull(dst), nil
	case bool:
		return abi.AppendBool(dst, x), nil
	case string:
		return abi.AppendString(dst, x), nil
	case int:
		return abi.AppendInt(dst, int64(x)), nil
	case int64:
		return abi.AppendInt(dst, x), nil
	case int32:
		return abi.AppendInt(dst, int64(x)), nil
	case int16:
		return abi.AppendInt(dst, int64(x)), nil
	case int8:
		return abi.AppendInt(dst, int64(x)), nil
	case uint:
		return appendUint(dst, uint64(x))
	case uint64:
		return appendUint(dst, x)
	case uint32:
		return abi.AppendInt(dst, int64(x)), nil
	case uint16:
		return abi.AppendInt(dst, int64(x)), nil
	case uint8:
		return abi.AppendInt(dst, int64(x)), nil
	case float64:
		return appendFloat(dst, x)
	case float32:
		return appendFloat(dst, float64(x))
	case MapValue: // the SDK's own Marshalers first: cheaper than the interface case
		return x.AppendCBOR(dst)
	case Value:
		return x.AppendCBOR(dst)
	case ListValue:
		return x.AppendCBOR(dst)
	case Marshaler:
		return x.AppendCBOR(dst)
	case []any:
		return appendSlice(dst, x)
	case []string:
		dst = abi.AppendHead(dst, abi.MajorArray, uint64(len(x)))
		for _, s := range x {
			dst = abi.AppendString(dst, s)
		}
		return dst, nil
	case []int:
		dst = abi.AppendHead(dst, abi.MajorArray, uint64(len(x)))
		for _, i := range x {
			dst = abi.AppendInt(dst, int64(i))
		}
		return dst, nil
	case []int64:
		dst = abi.AppendHead(dst, abi.MajorArray, uint64(len(x)))
		for _, i := range x {
			dst = abi.AppendInt(dst, i)
		}
		return dst, nil
	case []float64:
		dst = abi.AppendHead(dst, abi.MajorArray, uint64(len(x)))
		var err error
		for _, f := range x {
			if dst, err = appendFloat(dst, f); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case []bool:
		dst = abi.AppendHead(dst, abi.MajorArray, uint64(len(x)))
		for _, b := range x {
			dst = abi.AppendBool(dst, b)
		}
		return dst, nil
	case map[string]any:
		return appendGoMap(dst, x)
	case map[string]string:
		return appendGoMap(dst, x)
	case map[string]int:
		return appendGoMap(dst, x)
	case map[string]int64:
		return appendGoMap(dst, x)
	case map[string]bool:
		return appendGoMap(dst, x)
	}
	return dst, ErrUnsupported
}

func appendUint(dst []byte, u uint64) ([]byte, error) {
	if u > math.MaxInt64 {
		return dst, ErrUnsupported
	}
	return abi.AppendInt(dst, int64(u)), nil
}

func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, ErrUnsupported
	}
	return abi.AppendFloat(dst, f), nil
}

func appendSlice(dst []byte, items []any) ([]byte, error) {
	dst = abi.AppendHead(dst, abi.MajorArray, uint64(len(items)))
	var err error
	for _, it := range items {
		if dst, err = AppendCBOR(dst, it); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// CompareKeys orders map keys the way the host's state does (and the
// deterministic CBOR encoding of RFC 8949 section 4.2.1 for text keys):
// shorter keys first, then bytewise.
func CompareKeys(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// appendGoMap writes a Go map with sorted keys, so that map iteration order
// never reaches the state.
func appendGoMap[V any](dst []byte, m map[string]V) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, CompareKeys)
	dst = abi.AppendHead(dst, abi.MajorMap, uint64(len(keys)))
	var err error
	for _, k := range keys {
		dst = abi.AppendString(dst, k)
		if dst, err = AppendCBOR(dst, any(m[k])); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// String returns v as JSON text, for debugging.
func (v Value) String() string {
	if !v.Exists() {
		return "<missing>"
	}
	if j := v.JSON(); j != "" {
		return j
	}
	return "<malformed " + strconv.Itoa(len(v.b)) + " bytes>"
}
