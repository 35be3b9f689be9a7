//go:build !wasip1

package nodb

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nodb-dev/nodb/abi"
)

// MemStore is an in-memory Store with the state semantics of ABI.md
// ("State"): the root is a map; Set creates missing intermediate maps, and on
// an array takes an index (replace), the length or "-" (append); a Set that
// would nest the state deeper than abi.MaxStateDepth is StatusTooLarge;
// Delete on an array removes the item. Values are kept decoded (nil, bool,
// int64, float64, string, []any, map[string]any) and encoded on Get with
// sorted keys (see CompareKeys), so equal states give equal bytes. It is not
// safe for concurrent use.
type MemStore struct {
	root map[string]any
	enc  []byte
}

// NewMemStore returns an empty store (the root is an empty map).
func NewMemStore() *MemStore { return &MemStore{root: map[string]any{}} }

// Get implements Store. The returned bytes are valid until the next call.
func (m *MemStore) Get(path string) ([]byte, bool, error) {
	cur, ok, err := m.lookup(path)
	if !ok || err != nil {
		return nil, false, err
	}
	m.enc = appendNode(m.enc[:0], cur)
	return m.enc, true, nil
}

// Has reports whether there is a value at path (the host's state_has).
func (m *MemStore) Has(path string) (bool, error) {
	_, ok, err := m.lookup(path)
	return ok, err
}

// lookup returns the node at path.
func (m *MemStore) lookup(path string) (any, bool, error) {
	var cur any = m.root
	for rest := path; rest != ""; {
		tok, next, ok := abi.NextToken(rest)
		if !ok {
			return nil, false, abi.StatusInvalidPath
		}
		switch c := cur.(type) {
		case map[string]any:
			if cur, ok = c[abi.Unescape(tok)]; !ok {
				return nil, false, nil
			}
		case []any:
			i, ok := abi.ArrayIndex(tok)
			if !ok || i < 0 || i >= len(c) {
				return nil, false, nil
			}
			cur = c[i]
		default:
			return nil, false, nil
		}
		rest = next
	}
	return cur, true, nil
}

// walk says what parent does on the way to the container of a path.
type walk int

const (
	// walkDelete: a path that does not lead to a container is
	// StatusNotFound, as on the host.
	walkDelete walk = iota
	// walkSet: missing maps are created and a null on the way is replaced
	// with a map, as the host does.
	walkSet
	// walkTrySet: as walkSet, with the maps it would create, but nothing
	// is changed: the checks of a set alone.
	walkTrySet
)

// parent walks to the container holding the last token of path (see walk).
func (m *MemStore) parent(path string, w walk) (any, string, abi.Status) {
	create := w != walkDelete
	var cur any = m.root
	rest := path
	for {
		tok, next, ok := abi.NextToken(rest)
		if !ok {
			return nil, "", abi.StatusInvalidPath
		}
		if next == "" {
			return cur, tok, abi.StatusOK
		}
		switch c := cur.(type) {
		case map[string]any:
			k := abi.Unescape(tok)
			child, ok := c[k]
			if !ok && !create {
				return nil, "", abi.StatusNotFound
			}
			if child == nil && create {
				child = map[string]any{}
				if w == walkSet {
					c[k] = child
				}
			}
			cur = child
		case []any:
			i, ok := abi.ArrayIndex(tok)
			if !ok || i < 0 || i >= len(c) {
				if !create {
					return nil, "", abi.StatusNotFound
				}
				return nil, "", abi.StatusInvalidPath
			}
			cur = c[i]
			if cur == nil && create {
				cur = map[string]any{}
				if w == walkSet {
					c[i] = cur
				}
			}
		default:
			if !create {
				return nil, "", abi.StatusNotFound
			}
			return nil, "", abi.StatusTypeMismatch
		}
		rest = next
	}
}

// settableIn returns the status of a set under tok in container c: a map
// takes any key, an array an index up to its length or "-".
func settableIn(c any, tok string) abi.Status {
	switch c := c.(type) {
	case map[string]any:
		return abi.StatusOK
	case []any:
		if i, ok := abi.ArrayIndex(tok); !ok || i > len(c) {
			return abi.StatusInvalidPath
		}
		return abi.StatusOK
	}
	return abi.StatusTypeMismatch
}

// setIn stores v under tok in container c; it returns the container to store
// back (arrays may grow).
func setIn(c any, tok string, v any) (any, abi.Status) {
	if st := settableIn(c, tok); st != abi.StatusOK {
		return nil, st
	}
	switch c := c.(type) {
	case map[string]any:
		c[abi.Unescape(tok)] = v
	case []any:
		i, _ := abi.ArrayIndex(tok)
		if i < 0 || i == len(c) {
			return append(c, v), abi.StatusOK
		}
		c[i] = v
	}
	return c, abi.StatusOK
}

// nesting returns how deeply v nests, as the host counts it: 0 for a
// scalar, 1 more than its deepest element for an array or map.
func nesting(v any) int {
	d := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			d = max(d, nesting(e))
		}
	case map[string]any:
		for _, e := range x {
			d = max(d, nesting(e))
		}
	default:
		return 0
	}
	return d + 1
}

// checkDepth returns StatusTooLarge for a set of v at path that would nest
// the state deeper than abi.MaxStateDepth (the path's tokens plus v's
// nesting), as the host's state tree does. The host reports a path that
// cannot be set (StatusInvalidPath, StatusTypeMismatch) first, and changes
// nothing either way, so a set that is too deep is first tried without
// changes for that status.
func (m *MemStore) checkDepth(path string, v any) abi.Status {
	n := strings.Count(path, "/") // one per token: a '/' in a key is "~1"
	// decodeNode takes values at most abi.MaxDepth+1 deep (an empty array
	// inside abi.MaxDepth others): a shorter path cannot go over.
	if n+abi.MaxDepth+1 <= abi.MaxStateDepth || n+nesting(v) <= abi.MaxStateDepth {
		return abi.StatusOK
	}
	c, tok, st := m.parent(path, walkTrySet)
	if st == abi.StatusOK {
		st = settableIn(c, tok)
	}
	if st != abi.StatusOK {
		return st
	}
	return abi.StatusTooLarge
}

// Set implements Store.
func (m *MemStore) Set(path string, value []byte) error {
	v, rest, st := decodeNode(value, 0)
	if st != abi.StatusOK || len(rest) != 0 {
		return abi.StatusInvalidValue
	}
	if path == "" {
		root, ok := v.(map[string]any)
		if !ok {
			return abi.StatusTypeMismatch
		}
		m.root = root
		return nil
	}
	if st := m.checkDepth(path, v); st != abi.StatusOK {
		return st
	}
	return m.update(path, walkSet, func(c any, tok string) (any, abi.Status) { return setIn(c, tok, v) })
}

// add is Set with the add of RFC 6902 on arrays: an index below the
// array's length inserts there, shifting the items after it up.
func (m *MemStore) add(path string, value []byte) error {
	if path == "" {
		return m.Set(path, value)
	}
	v, rest, st := decodeNode(value, 0)
	if st != abi.StatusOK || len(rest) != 0 {
		return abi.StatusInvalidValue
	}
	if st := m.checkDepth(path, v); st != abi.StatusOK {
		return st
	}
	return m.update(path, walkSet, func(c any, tok string) (any, abi.Status) {
		if a, ok := c.([]any); ok {
			if i, ok := abi.ArrayIndex(tok); ok && i >= 0 && i < len(a) {
				return slices.Insert(a, i, v), abi.StatusOK
			}
		}
		return setIn(c, tok, v)
	})
}

// Delete implements Store.
func (m *MemStore) Delete(path string) error {
	if path == "" {
		m.root = map[string]any{}
		return nil
	}
	return m.update(path, walkDelete, func(c any, tok string) (any, abi.Status) {
		switch c := c.(type) {
		case map[string]any:
			k := abi.Unescape(tok)
			if _, ok := c[k]; !ok {
				return nil, abi.StatusNotFound
			}
			delete(c, k)
			return c, abi.StatusOK
		case []any:
			i, ok := abi.ArrayIndex(tok)
			if !ok || i < 0 || i >= len(c) {
				return nil, abi.StatusNotFound
			}
			return slices.Delete(c, i, i+1), abi.StatusOK
		}
		return nil, abi.StatusNotFound
	})
}

// update applies fn to the parent container of path and stores a grown or
// shrunk array back into its own parent.
func (m *MemStore) update(path string, w walk, fn func(c any, tok string) (any, abi.Status)) error {
	c, tok, st := m.parent(path, w)
	if st != abi.StatusOK {
		return st
	}
	nc, st := fn(c, tok)
	if st != abi.StatusOK {
		return st
	}
	if _, isArr := c.([]any); isArr {
		// The array's header changed: store it back at the parent path.
		i := len(path) - len(tok) - 1
		return m.setNode(path[:i], nc)
	}
	return nil
}

// setNode stores an already decoded node at path.
func (m *MemStore) setNode(path string, v any) error {
	if path == "" {
		return abi.StatusTypeMismatch
	}
	c, tok, st := m.parent(path, walkSet)
	if st != abi.StatusOK {
		return st
	}
	nc, st := setIn(c, tok, v)
	if st != abi.StatusOK {
		return st
	}
	if _, isArr := c.([]any); isArr {
		i := len(path) - len(tok) - 1
		return m.setNode(path[:i], nc)
	}
	return nil
}

// JSON returns the whole state as JSON text.
func (m *MemStore) JSON() string {
	b, _, _ := abi.AppendCBORAsJSON(nil, appendNode(nil, m.root))
	return string(b)
}

// CBOR returns the whole state encoded with sorted keys.
func (m *MemStore) CBOR() []byte { return appendNode(nil, m.root) }

func appendNode(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return abi.AppendNull(dst)
	case bool:
		return abi.AppendBool(dst, x)
	case int64:
		return abi.AppendInt(dst, x)
	case float64:
		return abi.AppendFloat(dst, x)
	case string:
		return abi.AppendString(dst, x)
	case []any:
		dst = abi.AppendHead(dst, abi.MajorArray, uint64(len(x)))
		for _, it := range x {
			dst = appendNode(dst, it)
		}
		return dst
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, CompareKeys)
		dst = abi.AppendHead(dst, abi.MajorMap, uint64(len(keys)))
		for _, k := range keys {
			dst = abi.AppendString(dst, k)
			dst = appendNode(dst, x[k])
		}
		return dst
	}
	panic("nodb: MemStore holds an unexpected type")
}

func decodeNode(b []byte, depth int) (any, []byte, abi.Status) {
	if depth > abi.MaxDepth {
		return nil, nil, abi.StatusInvalidValue
	}
	v := Value{b: b}
	major, info, arg, n, ok := abi.ReadHead(b)
	if !ok {
		return nil, nil, abi.StatusInvalidValue
	}
	switch major {
	case abi.MajorUint, abi.MajorNegInt:
		i, ok := v.IntOK()
		if !ok {
			return nil, nil, abi.StatusInvalidValue
		}
		return i, b[n:], abi.StatusOK
	case abi.MajorText:
		if arg > uint64(len(b)-n) {
			return nil, nil, abi.StatusInvalidValue
		}
		return string(b[n : n+int(arg)]), b[n+int(arg):], abi.StatusOK
	case abi.MajorArray:
		out := make([]any, 0, min(arg, 64))
		b = b[n:]
		for k := uint64(0); k < arg; k++ {
			var it any
			var st abi.Status
			if it, b, st = decodeNode(b, depth+1); st != abi.StatusOK {
				return nil, nil, st
			}
			out = append(out, it)
		}
		return out, b, abi.StatusOK
	case abi.MajorMap:
		out := make(map[string]any, min(arg, 64))
		b = b[n:]
		for k := uint64(0); k < arg; k++ {
			key, rest, st := decodeNode(b, depth+1)
			ks, isStr := key.(string)
			if st != abi.StatusOK || !isStr || abi.IsForbiddenKey(ks) {
				return nil, nil, abi.StatusInvalidValue
			}
			if _, dup := out[ks]; dup { // the host refuses duplicate keys
				return nil, nil, abi.StatusInvalidValue
			}
			var it any
			if it, b, st = decodeNode(rest, depth+1); st != abi.StatusOK {
				return nil, nil, st
			}
			out[ks] = it
		}
		return out, b, abi.StatusOK
	case abi.MajorSimple:
		switch info {
		case 20:
			return false, b[n:], abi.StatusOK
		case 21:
			return true, b[n:], abi.StatusOK
		case 22:
			return nil, b[n:], abi.StatusOK
		case 25, 26, 27:
			f := abi.FloatValue(info, arg)
			if f == 0 {
				f = 0 // -0 too, as the host stores it
			}
			return f, b[n:], abi.StatusOK
		}
	}
	return nil, nil, abi.StatusInvalidValue
}

// ApplyJSONPatch applies RFC 6902 operations (JSON text: an array of
// {"op","path","value"}) as the host's views record them: add and replace
// store the value (on an array, at an index or "-"), remove deletes. It
// stops at the first operation that does not apply.
func (m *MemStore) ApplyJSONPatch(opsJSON string) error {
	var ops []struct {
		Op    string          `json:"op"`
		Path  *string         `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal([]byte(opsJSON), &ops); err != nil {
		return fmt.Errorf("nodb: patch: %w", err)
	}
	for i, op := range ops {
		if op.Path == nil {
			return fmt.Errorf("nodb: patch op %d: no path", i)
		}
		var err error
		switch op.Op {
		case "add", "replace":
			var v []byte
			if v, err = abi.AppendJSONAsCBOR(nil, op.Value); err == nil {
				if op.Op == "add" {
					err = m.add(*op.Path, v)
				} else {
					err = m.Set(*op.Path, v)
				}
			}
		case "remove":
			err = m.Delete(*op.Path)
		default:
			err = fmt.Errorf("op %q is not add, remove or replace", op.Op)
		}
		if err != nil {
			return fmt.Errorf("nodb: patch op %d (%s %s): %w", i, op.Op, *op.Path, err)
		}
	}
	return nil
}
