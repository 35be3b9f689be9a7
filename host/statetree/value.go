package statetree

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
	"unsafe"
)

// Kind is the kind of a Value.
type Kind uint8

// The kinds of Value. The numeric values are part of the hash encoding (see
// the package documentation) and must never change.
const (
	KindNull   Kind = 0
	KindBool   Kind = 1
	KindInt    Kind = 2
	KindFloat  Kind = 3
	KindString Kind = 4
	KindArray  Kind = 5
	KindMap    Kind = 6
)

var kindNames = [...]string{"null", "bool", "int", "float", "string", "array", "map"}

// String returns the kind's name: "null", "bool", "int", "float", "string",
// "array" or "map".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// article returns the kind's name with an indefinite article, for errors.
func (k Kind) article() string {
	switch k {
	case KindNull:
		return "null"
	case KindInt, KindArray:
		return "an " + k.String()
	}
	return "a " + k.String()
}

// Value is an immutable JSON-compatible value: null, bool, int, float,
// string, array or map. The zero Value is null.
//
// A Value is a small struct that is cheap to copy; containers point to
// shared, never-modified nodes, so copying a Value never copies its content
// and a Value may be read from any number of goroutines at once. Every Value
// obeys the package invariants: floats are finite, strings are valid UTF-8,
// and no map (at any depth) has a key listed in ForbiddenKeys.
type Value struct {
	// ptr is the string's bytes (KindString), the *arrNode (KindArray) or
	// the trie root *tnode (KindMap; nil for the empty array and map).
	ptr  unsafe.Pointer
	bits uint64 // bool (0/1), int64, float64 bits, or the string's length
	kind Kind
}

// The three pointer kinds share ptr, so that a Value is 24 bytes: it is
// copied on every read and stored in every trie node and array element.

func stringValue(s string) Value {
	return Value{kind: KindString, ptr: unsafe.Pointer(unsafe.StringData(s)), bits: uint64(len(s))}
}

func mapValue(n *tnode) Value { return Value{kind: KindMap, ptr: unsafe.Pointer(n)} }

func arrayValue(n *arrNode) Value { return Value{kind: KindArray, ptr: unsafe.Pointer(n)} }

// sv returns a string's text ("" for other kinds).
func (v Value) sv() string {
	if v.kind != KindString {
		return ""
	}
	return unsafe.String((*byte)(v.ptr), int(v.bits))
}

// array returns an array's node (nil for the empty array and other kinds).
func (v Value) array() *arrNode {
	if v.kind != KindArray {
		return nil
	}
	return (*arrNode)(v.ptr)
}

// node returns a map's trie root (nil for the empty map and other kinds).
func (v Value) node() *tnode {
	if v.kind != KindMap {
		return nil
	}
	return (*tnode)(v.ptr)
}

// arrNode is the immutable body of an array. Arrays are copied slices: every
// change to an array copies its element slice (O(n)), which is cheap for the
// small arrays state trees hold; large keyed collections belong in maps.
type arrNode struct {
	elems []Value
	depth int32  // 1 + the deepest nesting of the elements
	edit  uint64 // the edit token of the Tx that may change it in place (see tnode)
	hash  hashCell
}

// Errors returned by constructors and decoders.
var (
	// ErrForbiddenKey reports a map key or path token that would pollute a
	// JavaScript client's prototype chain. Returned errors wrap it.
	ErrForbiddenKey = errors.New("statetree: forbidden key")
	// ErrNotFinite reports a NaN or infinite float.
	ErrNotFinite = errors.New("statetree: float is not finite (NaN and ±Inf have no JSON form)")
	// ErrInvalidUTF8 reports a string or key that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("statetree: string is not valid UTF-8")
	// ErrTooDeep reports a value that would nest deeper than MaxDepth.
	ErrTooDeep = errors.New("statetree: value nests too deeply")
	// ErrNoElement reports a set whose path names an element an array does
	// not have (an index past its end; appending at its length or "-" is
	// allowed). Returned errors wrap it.
	ErrNoElement = errors.New("statetree: no such array element")
)

// noElementError is a set's error for a missing array element; it wraps
// ErrNoElement.
type noElementError struct{ msg string }

// Error says which element of which array.
func (e *noElementError) Error() string { return e.msg }

// Unwrap returns ErrNoElement.
func (e *noElementError) Unwrap() error { return ErrNoElement }

var errTooDeep = fmt.Errorf("%w (limit %d)", ErrTooDeep, MaxDepth)

// MaxDepth is the deepest nesting of arrays and maps a Value may have. Every
// way of building a Value (decoders, Set, Insert, Map, Array) enforces it, so
// any state tree can be encoded and decoded again.
const MaxDepth = 512

// ForbiddenKeys lists the map keys that are rejected anywhere in a path or a
// value, because a JavaScript client applying a patch with them could have its
// object prototypes polluted. Do not modify.
var ForbiddenKeys = []string{"__proto__", "constructor", "prototype"}

// forbiddenKeyError is the error for key k; it wraps ErrForbiddenKey.
type forbiddenKeyError struct{ key string }

// Error names the key.
func (e *forbiddenKeyError) Error() string {
	return fmt.Sprintf("statetree: key %q is not allowed (it would pollute JavaScript clients)", e.key)
}

// Unwrap returns ErrForbiddenKey.
func (e *forbiddenKeyError) Unwrap() error { return ErrForbiddenKey }

// checkKey returns an error if k may not be used as a map key.
func checkKey(k string) error {
	switch k {
	case "__proto__", "constructor", "prototype":
		return &forbiddenKeyError{k}
	}
	if !utf8.ValidString(k) {
		return fmt.Errorf("%w: key %q", ErrInvalidUTF8, k)
	}
	return nil
}

var (
	null     = Value{}
	valTrue  = Value{kind: KindBool, bits: 1}
	valFalse = Value{kind: KindBool}
)

// Null returns the null Value (the zero Value).
func Null() Value { return null }

// Bool returns a bool Value.
func Bool(b bool) Value {
	if b {
		return valTrue
	}
	return valFalse
}

// Int returns an int Value.
func Int(i int64) Value { return Value{kind: KindInt, bits: uint64(i)} }

// Float returns a float Value. Negative zero is stored as positive zero, so
// that the value has a single JSON form. It panics if f is NaN or infinite;
// use NewFloat for untrusted input.
func Float(f float64) Value {
	v, err := NewFloat(f)
	if err != nil {
		panic(err)
	}
	return v
}

// NewFloat returns a float Value, or ErrNotFinite for NaN and ±Inf.
// Negative zero is stored as positive zero.
func NewFloat(f float64) (Value, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return null, ErrNotFinite
	}
	if f == 0 {
		f = 0 // drop the sign of -0
	}
	return Value{kind: KindFloat, bits: math.Float64bits(f)}, nil
}

// String returns a string Value. It panics if s is not valid UTF-8; use
// NewString for untrusted input.
func String(s string) Value {
	v, err := NewString(s)
	if err != nil {
		panic(err)
	}
	return v
}

// NewString returns a string Value, or ErrInvalidUTF8.
func NewString(s string) (Value, error) {
	if !utf8.ValidString(s) {
		return null, ErrInvalidUTF8
	}
	return stringValue(s), nil
}

// Array returns an array Value holding elems. The slice is copied. It
// panics if the array would nest deeper than MaxDepth.
func Array(elems ...Value) Value {
	v := arrayOwned(slices.Clone(elems))
	if v.depth() > MaxDepth {
		panic(errTooDeep)
	}
	return v
}

// arrayOwned wraps elems without copying; the caller gives up elems.
func arrayOwned(elems []Value) Value {
	if len(elems) == 0 {
		return Value{kind: KindArray}
	}
	d := int32(0)
	for i := range elems {
		d = max(d, elems[i].depth())
	}
	return arrayValue(&arrNode{elems: elems, depth: d + 1})
}

// editedBy reports whether v's top node is owned by the edit token e (see
// Tx). Every node on the path from a Tx's root to a node it owns is owned
// too, so a container whose top node is not owned holds no owned node.
func (v Value) editedBy(e uint64) bool {
	switch v.kind {
	case KindMap:
		return v.node() != nil && v.node().edit == e
	case KindArray:
		return v.array() != nil && v.array().edit == e
	}
	return false
}

// depth returns how deeply v nests: 0 for scalars, 1 for a container of
// scalars (or an empty one), and so on.
func (v Value) depth() int32 {
	switch v.kind {
	case KindArray:
		if v.array() == nil {
			return 1
		}
		return v.array().depth
	case KindMap:
		if v.node() == nil {
			return 1
		}
		return v.node().depth() + 1
	}
	return 0
}

// EmptyMap returns the empty map Value.
func EmptyMap() Value { return Value{kind: KindMap} }

// Map returns a map Value holding the entries of m. It fails if a key is
// forbidden (ErrForbiddenKey) or not valid UTF-8, or if the map would nest
// deeper than MaxDepth.
func Map(m map[string]Value) (Value, error) {
	es := make([]entry, 0, len(m))
	for k, v := range m {
		if err := checkKey(k); err != nil {
			return null, err
		}
		es = append(es, entry{k, v})
	}
	v := mapFromEntries(es)
	if v.depth() > MaxDepth {
		return null, errTooDeep
	}
	return v, nil
}

// mapFromEntries builds a map from unique, already checked entries, sorting
// them in place.
func mapFromEntries(es []entry) Value {
	sortEntries(es)
	return mapValue(buildTrie(es))
}

// Kind returns v's kind.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// Bool returns v's bool, or false if v is not a bool.
func (v Value) Bool() bool { return v.kind == KindBool && v.bits != 0 }

// Int returns v's int, or 0 if v is not an int.
func (v Value) Int() int64 {
	if v.kind != KindInt {
		return 0
	}
	return int64(v.bits)
}

// Float returns v's float; an int is converted to float64. Other kinds give 0.
func (v Value) Float() float64 {
	switch v.kind {
	case KindFloat:
		return math.Float64frombits(v.bits)
	case KindInt:
		return float64(int64(v.bits))
	}
	return 0
}

// Str returns v's string, or "" if v is not a string.
func (v Value) Str() string { return v.sv() }

// Len returns the number of elements of an array, the number of entries of
// a map, and 0 for other kinds. It is O(1).
func (v Value) Len() int {
	switch v.kind {
	case KindArray:
		if v.array() != nil {
			return len(v.array().elems)
		}
	case KindMap:
		if v.node() != nil {
			return int(v.node().size)
		}
	}
	return 0
}

// Index returns element i of an array. It returns null if v is not an array
// or i is out of range.
func (v Value) Index(i int) Value {
	if v.kind != KindArray || v.array() == nil || i < 0 || i >= len(v.array().elems) {
		return null
	}
	return v.array().elems[i]
}

// elems returns an array's elements; callers must not modify them.
func (v Value) elems() []Value {
	if v.array() == nil {
		return nil
	}
	return v.array().elems
}

// Lookup returns the value stored under key in a map. ok is false if v is
// not a map or has no such key.
func (v Value) Lookup(key string) (val Value, ok bool) {
	if v.kind != KindMap {
		return null, false
	}
	return v.node().get(key)
}

// Range calls fn for each entry of a map in canonical key order (bytewise),
// stopping early if fn returns false. It does nothing if v is not a map.
func (v Value) Range(fn func(key string, val Value) bool) {
	if v.kind == KindMap {
		v.node().each(fn)
	}
}

// Keys returns the keys of a map in canonical order (nil for other kinds).
func (v Value) Keys() []string {
	if v.kind != KindMap || v.node() == nil {
		return nil
	}
	ks := make([]string, 0, v.node().size)
	v.node().each(func(k string, _ Value) bool { ks = append(ks, k); return true })
	return ks
}

// Equal reports whether a and b are the same value. Int and float are
// distinct kinds, so Int(1) and Float(1) are not equal. Containers compare by
// pointer first and then by Merkle hash, so Equal is O(1) once hashes are
// cached.
func Equal(a, b Value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case KindNull:
		return true
	case KindBool, KindInt, KindFloat:
		return a.bits == b.bits
	case KindString:
		return a.sv() == b.sv()
	case KindArray:
		if a.array() == b.array() {
			return true
		}
		if a.Len() != b.Len() {
			return false
		}
	case KindMap:
		if a.node() == b.node() {
			return true
		}
		if a.Len() != b.Len() {
			return false
		}
	}
	return a.Hash() == b.Hash()
}

// GoString returns v as canonical JSON, for %#v in test failures.
func (v Value) GoString() string { return "statetree.Value(" + v.String() + ")" }

// String returns v as canonical JSON, for debugging and logs.
func (v Value) String() string {
	b, _ := v.MarshalJSON()
	return string(b)
}
