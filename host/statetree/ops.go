package statetree

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// The RFC 6902 operations a state tree records. No others are produced, so
// fast-json-patch and Immer can both apply the patches.
const (
	OpAdd     = "add"
	OpRemove  = "remove"
	OpReplace = "replace"
)

// Op is one RFC 6902 JSON Patch operation: add, remove or replace.
type Op struct {
	// Op is OpAdd, OpRemove or OpReplace.
	Op string
	// Path is the RFC 6901 JSON Pointer of the target location.
	Path string
	// Value is the new value for add and replace; it is ignored (and not
	// marshalled) for remove.
	Value Value
}

var (
	// errNotFound is what modify returns when the path does not exist.
	errNotFound = errors.New("statetree: path not found")
	// errDeleteRoot is the error for deleting the root.
	errDeleteRoot = errors.New("statetree: cannot delete the root")
)

// childOf returns the child of container cur under token tok.
func childOf(cur Value, tok string) (Value, bool) {
	switch cur.kind {
	case KindMap:
		return cur.node().get(tok)
	case KindArray:
		i, ok := arrayIndex(tok, cur.Len())
		if !ok || i >= cur.Len() {
			return null, false
		}
		return cur.array().elems[i], true
	}
	return null, false
}

// Get returns the value at path p, and whether it exists.
func (v Value) Get(p Path) (Value, bool) {
	for _, tok := range p {
		var ok bool
		if v, ok = childOf(v, tok); !ok {
			return null, false
		}
	}
	return v, true
}

// modify returns cur with the value x at p[i:] replaced by fn(x), copying
// the containers on the path that the edit token e does not own and
// changing those it owns in place. It returns errNotFound if the path does
// not exist, and cur itself if fn reports no change. fn must fail, if it
// does, before anything is changed.
func modify(cur Value, p Path, i int, e uint64, fn func(Value) (Value, bool, error)) (Value, bool, error) {
	if i == len(p) {
		return fn(cur)
	}
	child, ok := childOf(cur, p[i])
	if !ok {
		return cur, false, errNotFound
	}
	nc, changed, err := modify(child, p, i+1, e, fn)
	if err != nil || !changed {
		return cur, false, err
	}
	return withChild(cur, p[i], nc, e), true, nil
}

// withChild returns container cur with the existing child tok replaced.
func withChild(cur Value, tok string, nc Value, e uint64) Value {
	if cur.kind == KindMap {
		return mapValue(cur.node().set(tok, nc, e))
	}
	i, _ := arrayIndex(tok, cur.Len())
	return arraySet(cur, i, nc, e)
}

// arrayEdited wraps elems (given up by the caller) as an array owned by the
// edit token e.
func arrayEdited(elems []Value, e uint64) Value {
	v := arrayOwned(elems)
	if v.array() != nil {
		v.array().edit = e
	}
	return v
}

// editable returns a's node if the edit token e owns it, with its cached
// hash dropped, ready to be changed in place; else nil.
func (a Value) editable(e uint64) *arrNode {
	n := a.array()
	if e == 0 || n == nil || n.edit != e {
		return nil
	}
	if n.hash.p.Load() != nil {
		n.hash.p.Store(nil)
	}
	return n
}

// redepth recomputes n.depth, which still holds the old depth, after an
// element may have become shallower or was removed (see tnode.shallower).
func (n *arrNode) redepth() {
	d := int32(0)
	for i := range n.elems {
		ed := n.elems[i].depth()
		if ed+1 >= n.depth {
			return
		}
		d = max(d, ed)
	}
	n.depth = d + 1
}

// arraySet returns array a with element i replaced by x.
func arraySet(a Value, i int, x Value, e uint64) Value {
	if n := a.editable(e); n != nil {
		n.elems[i] = x
		if d := x.depth() + 1; d >= n.depth {
			n.depth = d
		} else {
			n.redepth()
		}
		return a
	}
	es := slices.Clone(a.elems())
	es[i] = x
	return arrayEdited(es, e)
}

// arrayInsert returns array a with x inserted at index i (0 to a.Len()).
func arrayInsert(a Value, i int, x Value, e uint64) Value {
	if n := a.editable(e); n != nil {
		n.elems = slices.Insert(n.elems, i, x)
		n.depth = max(n.depth, x.depth()+1)
		return a
	}
	es := a.elems()
	if i == len(es) {
		return arrayEdited(append(slices.Clip(es), x), e)
	}
	return arrayEdited(slices.Insert(slices.Clone(es), i, x), e)
}

// arrayRemove returns array a without element i.
func arrayRemove(a Value, i int, e uint64) Value {
	if n := a.editable(e); n != nil {
		if len(n.elems) == 1 {
			return Value{kind: KindArray}
		}
		n.elems = slices.Delete(n.elems, i, i+1)
		n.redepth()
		return a
	}
	return arrayEdited(slices.Delete(slices.Clone(a.elems()), i, i+1), e)
}

// wrap returns x nested in new maps, one per token: wrap([a b], x) is
// {"a":{"b":x}}. The maps are not owned by any Tx: the value is also an
// op's, which must never change.
func wrap(toks Path, x Value) Value {
	for i := len(toks) - 1; i >= 0; i-- {
		x = mapValue(newLeaf(toks[i], x, 0))
	}
	return x
}

func checkPath(p Path) error {
	for _, tok := range p {
		if err := checkKey(tok); err != nil {
			return err
		}
	}
	return nil
}

// Tx applies a series of changes to a root and collects the RFC 6902 ops
// that turn the old root into the new one. Get sees the changes made so far.
// A Tx is not safe for concurrent use; the roots it produces are ordinary
// immutable Values. A failed change leaves the Tx as it was.
//
// A Tx edits transiently, as Clojure's transients and Immer do: the nodes it
// creates are its own until it commits, and later changes in the same Tx
// change them in place instead of copying them again, so a series of
// changes to nearby paths costs little more than one. Nodes that existed
// before are never changed (they are copied on the first change below them,
// as always), and neither is anything a Value handed out by the Tx can
// reach: Root, Get and Commit end the ownership of every node the Tx made so
// far whenever the value they return holds one. The ops' values are never
// owned. Merkle hashes cached in a node changed in place are dropped.
type Tx struct {
	root Value
	ops  []Op
	// base is the root after the first baseOps ops: the Begin or Commit
	// root, or the last Rollback point. Rollback rebuilds from it.
	base    Value
	baseOps int
	// edit is the token marking the nodes this Tx may change in place; 0
	// until the first change after Begin or after ownership ended.
	edit uint64
	// opsHint is the number of ops the last Commit handed out: the next op
	// slice starts with room for about as many (see addOp).
	opsHint int
}

// editTokens hands out edit tokens; 0 is never one. 64 bits never wrap.
var editTokens atomic.Uint64

// token returns the Tx's edit token, taking a fresh one if needed.
func (t *Tx) token() uint64 {
	if t.edit == 0 {
		t.edit = editTokens.Add(1)
	}
	return t.edit
}

// escape ends the ownership of the Tx's nodes if v holds one, because v is
// about to be handed out and must never change.
func (t *Tx) escape(v Value) {
	if t.edit != 0 && v.editedBy(t.edit) {
		t.edit = 0
	}
}

// Begin starts a transaction on root v.
func (v Value) Begin() *Tx { return &Tx{root: v, base: v} }

// Root returns the current root: the start root with the changes so far.
func (t *Tx) Root() Value {
	t.escape(t.root)
	return t.root
}

// Ops returns the ops recorded so far. The slice is owned by the Tx.
func (t *Tx) Ops() []Op { return t.ops }

// Get returns the value at p in the current root.
func (t *Tx) Get(p Path) (Value, bool) {
	v, ok := t.root.Get(p)
	t.escape(v)
	return v, ok
}

// Peek is Get without ending the ownership of the Tx's nodes: the value
// it returns may change in place with the Tx's next change, so it must be
// used (encoded, compared, read) before then and not kept. A host function
// that encodes the value it reads for a guest uses Peek, so that reads do
// not make the next change copy what it could edit in place.
func (t *Tx) Peek(p Path) (Value, bool) { return t.root.Get(p) }

// Rollback discards the changes recorded after the first n ops since Begin
// or the last Commit: the root becomes the one the Tx had when Ops had n
// entries, rebuilt by applying those ops to the last known root (the
// Begin or Commit root, or the previous Rollback point), and Ops is cut to
// n. It is how a run of events in one Tx drops one rejected event's
// changes and keeps the others. n may not lie before an earlier Rollback
// point of the same Tx (the root there is no longer known); that, or n
// beyond len(Ops), is an error and leaves the Tx as it was.
func (t *Tx) Rollback(n int) error {
	if n < t.baseOps || n > len(t.ops) {
		return fmt.Errorf("statetree: cannot roll back to op %d (the Tx can go back to op %d at the earliest and has %d)", n, t.baseOps, len(t.ops))
	}
	if n == len(t.ops) {
		return nil
	}
	root := t.base
	for _, op := range t.ops[t.baseOps:n] {
		var err error
		if root, err = applyOp(root, op); err != nil {
			// The ops were recorded from this very root: they always apply.
			return fmt.Errorf("statetree: rollback: replaying %s %s: %w", op.Op, op.Path, err)
		}
	}
	t.root, t.base, t.baseOps = root, root, n
	t.ops = t.ops[:n]
	t.edit = 0
	return nil
}

// Commit returns the new root and the ops recorded, in order. The Tx may
// continue to be used; later changes start from the same root and add to a
// fresh op list.
func (t *Tx) Commit() (Value, []Op) {
	t.edit = 0
	ops := t.ops
	t.ops = nil
	t.opsHint = len(ops)
	t.base, t.baseOps = t.root, 0
	return t.root, ops
}

// Reset starts the Tx over on root v, as v.Begin() does, dropping the
// changes made since the last Commit. Unlike a new Tx, it keeps the number
// of ops the last Commit returned, and the first op after Reset allocates
// the op slice with room for about as many: a view that applies its events
// in runs of similar size then gets each run's ops in one allocation, not
// in a slice grown by doubling (about three times the bytes, all of them
// kept by the run's patches).
func (t *Tx) Reset(v Value) {
	*t = Tx{root: v, base: v, opsHint: t.opsHint}
}

// addOp records op. The Commit that hands the op slice out leaves none to
// reuse, so a fresh slice starts with room for a little more than the last
// Commit's ops (opsHint), instead of growing from nothing.
func (t *Tx) addOp(op Op) {
	if t.ops == nil && t.opsHint > 0 {
		t.ops = make([]Op, 0, t.opsHint+t.opsHint/16+4)
	}
	t.ops = append(t.ops, op)
}

// tooDeep returns the error for a change that would put x at p, if that
// nests deeper than MaxDepth: every container on the path adds a level,
// and the rest of the tree (unchanged or made shallower) was within the
// limit already.
func tooDeep(p Path, x Value, opPath string) error {
	if len(p)+int(x.depth()) > MaxDepth {
		return fmt.Errorf("statetree: cannot change %s: %w", opPath, errTooDeep)
	}
	return nil
}

// Set stores x at p, recording one op, or none if the value there already
// equals x (see Equal; replacing a container with another of the same length
// compares their hashes, computing them if needed):
//
//   - p exists: replace p.
//   - p names a missing map key: add p.
//   - p names the end of an array (index len or "-"): add at the concrete
//     index len (an append).
//   - intermediate maps are created: if p[:k] is the deepest existing
//     container and p[k] is a missing key of a map, or an existing null, the
//     maps for p[k+1:] are created and the single op is an add (or, for a
//     null, a replace) of p[:k+1] with the whole new subtree, so the patch
//     applies with plain RFC 6902 tools. A null root becomes a map and is
//     recorded as a replace of "".
//
// It fails for a path through a bool, number or string, an array index out
// of range (or one that would need an element created), a forbidden key, or
// a result deeper than MaxDepth.
func (t *Tx) Set(p Path, x Value) error {
	if err := checkPath(p); err != nil {
		return err
	}
	return t.set(p, "", x)
}

// SetPointer is Set at the parsed pointer q. The op it records has for its
// path q's text or a prefix of it (see Pointer), not one built from the
// tokens, and the tokens are not checked again.
func (t *Tx) SetPointer(q *Pointer, x Value) error { return t.set(q.path, q.text, x) }

// set is Set of checked tokens p; text is the pointer p was parsed from,
// or "" (see opPath).
func (t *Tx) set(p Path, text string, x Value) error {
	var op Op
	root, changed, err := setIn(t.root, p, text, 0, x, &op, t.token())
	if err != nil || !changed {
		return err
	}
	t.root = root
	t.addOp(op)
	return nil
}

// opPath returns the JSON Pointer of p[:k]: if text, the pointer p was
// parsed from, is not "", the prefix of text holding k tokens, else one
// built from the tokens. They are the same string (see Pointer).
func opPath(p Path, text string, k int) string {
	switch {
	case text == "":
		return p[:k].String()
	case k == len(p):
		return text
	}
	i := 0
	for ; k > 0; k-- { // k < len(p): another "/" follows the k-th token
		i += 1 + strings.IndexByte(text[i+1:], '/')
	}
	return text[:i]
}

// setIn returns cur (the existing value at p[:i]) with x stored at p[i:],
// in one descent, and fills in the op, whose paths come from opPath(p,
// text, ...). changed is false if x was already there. Containers owned by
// the edit token e are changed in place, others copied; every error is
// found before anything is changed.
func setIn(cur Value, p Path, text string, i int, x Value, op *Op, e uint64) (Value, bool, error) {
	if i == len(p) {
		if Equal(cur, x) {
			return cur, false, nil
		}
		*op = Op{OpReplace, opPath(p, text, i), x}
		if err := tooDeep(p, x, op.Path); err != nil {
			return cur, false, err
		}
		return x, true, nil
	}
	tok := p[i]
	switch cur.kind {
	case KindMap:
		var buf [16]step
		leaf, path, ok := cur.node().find(tok, buf[:0])
		var child, nc Value
		if ok {
			child = leaf.val()
		}
		switch {
		case !ok:
			nc = wrap(p[i+1:], x)
			*op = Op{OpAdd, opPath(p, text, i+1), nc}
			if err := tooDeep(p, x, op.Path); err != nil {
				return cur, false, err
			}
		case child.kind == KindNull && i+1 < len(p):
			nc = wrap(p[i+1:], x)
			*op = Op{OpReplace, opPath(p, text, i+1), nc}
			if err := tooDeep(p, x, op.Path); err != nil {
				return cur, false, err
			}
		default:
			var changed bool
			var err error
			if nc, changed, err = setIn(child, p, text, i+1, x, op, e); err != nil || !changed {
				return cur, false, err
			}
			return mapValue(replaceAt(path, leaf, nc, e)), true, nil
		}
		return mapValue(cur.node().set(tok, nc, e)), true, nil
	case KindArray:
		es := cur.elems()
		j, ok := arrayIndex(tok, len(es))
		switch {
		case ok && j < len(es):
			var nc Value
			if es[j].kind == KindNull && i+1 < len(p) {
				nc = wrap(p[i+1:], x)
				*op = Op{OpReplace, opPath(p, text, i+1), nc}
				if err := tooDeep(p, x, op.Path); err != nil {
					return cur, false, err
				}
			} else {
				var changed bool
				var err error
				if nc, changed, err = setIn(es[j], p, text, i+1, x, op, e); err != nil || !changed {
					return cur, false, err
				}
			}
			return arraySet(cur, j, nc, e), true, nil
		case ok && j == len(es) && i == len(p)-1:
			// "-" is recorded as the concrete index; a number token is it.
			var path string
			if tok == "-" {
				path = p[:i].Index(j).String()
			} else {
				path = opPath(p, text, i+1)
			}
			*op = Op{OpAdd, path, x}
			if err := tooDeep(p, x, op.Path); err != nil {
				return cur, false, err
			}
			return arrayInsert(cur, j, x, e), true, nil
		}
		return cur, false, &noElementError{fmt.Sprintf("statetree: cannot set %s: no element %q in the array at %q (length %d)", p.String(), tok, p.pointer(i), len(es))}
	case KindNull:
		if i == 0 { // a null root becomes a map
			nv := wrap(p, x)
			*op = Op{OpReplace, "", nv}
			if err := tooDeep(p, x, op.Path); err != nil {
				return cur, false, err
			}
			return nv, true, nil
		}
	}
	return cur, false, fmt.Errorf("statetree: cannot set %s: %q is %s, not a map or array", p.String(), p.pointer(i), cur.kind.article())
}

// Insert inserts x into an array at p, whose last token is an index from 0
// to the array's length or "-" (the end), shifting later elements up: an
// RFC 6902 add, recorded with the concrete index. The array must exist.
func (t *Tx) Insert(p Path, x Value) error {
	if len(p) == 0 {
		return errors.New("statetree: cannot insert at the root")
	}
	if err := checkPath(p); err != nil {
		return err
	}
	last, parent := p[len(p)-1], p[:len(p)-1]
	e := t.token()
	var op Op
	root, _, err := modify(t.root, parent, 0, e, func(a Value) (Value, bool, error) {
		if a.kind != KindArray {
			return a, false, fmt.Errorf("statetree: cannot insert at %s: %q is %s, not an array", p, parent.String(), a.kind.article())
		}
		n := a.Len()
		i, ok := arrayIndex(last, n)
		if !ok || i > n {
			return a, false, fmt.Errorf("statetree: cannot insert at %s: index %q is out of range (length %d)", p, last, n)
		}
		op = Op{OpAdd, parent.Index(i).String(), x}
		if err := tooDeep(p, x, op.Path); err != nil {
			return a, false, err
		}
		return arrayInsert(a, i, x, e), true, nil
	})
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("statetree: cannot insert at %s: %q does not exist", p, parent.String())
	}
	if err != nil {
		return err
	}
	t.root = root
	t.addOp(op)
	return nil
}

// Delete removes the value at p: a map entry, or an array element (later
// elements shift down). It records one remove op, or none if p does not
// exist. Deleting the root is an error.
func (t *Tx) Delete(p Path) error {
	if len(p) == 0 {
		return errDeleteRoot
	}
	if err := checkPath(p); err != nil {
		return err
	}
	t.remove(p, "")
	return nil
}

// remove is Delete of checked tokens p (at least one), reporting whether
// an op was recorded; text is as for set.
func (t *Tx) remove(p Path, text string) bool {
	root, ok := delIn(t.root, p, 0, t.token())
	if ok {
		t.root = root
		t.addOp(Op{Op: OpRemove, Path: opPath(p, text, len(p))})
	}
	return ok
}

// delIn returns cur (the existing value at p[:i], i < len(p)) without the
// value at p, in one descent, and whether there was one (if not, cur is
// returned unchanged). e is as for setIn.
func delIn(cur Value, p Path, i int, e uint64) (Value, bool) {
	tok, last := p[i], i == len(p)-1
	switch cur.kind {
	case KindMap:
		if last {
			m, ok := cur.node().del(tok, e)
			return mapValue(m), ok
		}
		var buf [16]step
		leaf, path, ok := cur.node().find(tok, buf[:0])
		if !ok {
			return cur, false
		}
		nc, ok := delIn(leaf.val(), p, i+1, e)
		if !ok {
			return cur, false
		}
		return mapValue(replaceAt(path, leaf, nc, e)), true
	case KindArray:
		n := cur.Len()
		j, ok := arrayIndex(tok, n)
		if !ok || j >= n {
			return cur, false
		}
		if last {
			return arrayRemove(cur, j, e), true
		}
		nc, ok := delIn(cur.elems()[j], p, i+1, e)
		if !ok {
			return cur, false
		}
		return arraySet(cur, j, nc, e), true
	}
	return cur, false
}

// Remove is Delete reporting whether there was a value at p to remove
// (whether an op was recorded), in the same single descent.
func (t *Tx) Remove(p Path) (bool, error) {
	n := len(t.ops)
	if err := t.Delete(p); err != nil {
		return false, err
	}
	return len(t.ops) > n, nil
}

// RemovePointer is Remove at the parsed pointer q, recording q's text as
// the op's path (see Pointer); the tokens are not checked again.
func (t *Tx) RemovePointer(q *Pointer) (bool, error) {
	if len(q.path) == 0 {
		return false, errDeleteRoot
	}
	return t.remove(q.path, q.text), nil
}

// Set returns v with x stored at p and the op recorded (see Tx.Set).
func (v Value) Set(p Path, x Value) (Value, []Op, error) {
	t := Tx{root: v}
	err := t.Set(p, x)
	return t.root, t.ops, err
}

// Delete returns v without the value at p and the op recorded (see
// Tx.Delete).
func (v Value) Delete(p Path) (Value, []Op, error) {
	t := Tx{root: v}
	err := t.Delete(p)
	return t.root, t.ops, err
}

// Apply applies RFC 6902 ops (add, remove, replace only) to root in order
// and returns the new root. It is strict: remove and replace need an
// existing target, add needs an existing parent, and array indices must be
// in range. It is meant for tests and Go clients; reducers use Tx.
func Apply(root Value, ops []Op) (Value, error) {
	for i, op := range ops {
		var err error
		if root, err = applyOp(root, op); err != nil {
			return root, fmt.Errorf("statetree: op %d (%s %s): %w", i, op.Op, op.Path, err)
		}
	}
	return root, nil
}

func applyOp(root Value, op Op) (Value, error) {
	p, err := ParsePath(op.Path)
	if err != nil {
		return root, err
	}
	if op.Op != OpAdd && op.Op != OpRemove && op.Op != OpReplace {
		return root, fmt.Errorf("statetree: unsupported op %q", op.Op)
	}
	if len(p) == 0 {
		if op.Op == OpRemove {
			return root, errors.New("statetree: cannot remove the root")
		}
		return op.Value, nil
	}
	last := p[len(p)-1]
	nr, _, err := modify(root, p[:len(p)-1], 0, 0, func(c Value) (Value, bool, error) {
		switch c.kind {
		case KindMap:
			_, exists := c.node().get(last)
			switch {
			case op.Op == OpAdd || exists && op.Op == OpReplace:
				return mapValue(c.node().set(last, op.Value, 0)), true, nil
			case exists:
				m, _ := c.node().del(last, 0)
				return mapValue(m), true, nil
			}
			return c, false, errNotFound
		case KindArray:
			n := c.Len()
			i, ok := arrayIndex(last, n)
			switch {
			case !ok:
			case op.Op == OpAdd && i <= n:
				return arrayOwned(slices.Insert(slices.Clone(c.elems()), i, op.Value)), true, nil
			case op.Op == OpRemove && i < n:
				return arrayOwned(slices.Delete(slices.Clone(c.elems()), i, i+1)), true, nil
			case op.Op == OpReplace && i < n:
				es := slices.Clone(c.elems())
				es[i] = op.Value
				return arrayOwned(es), true, nil
			}
			return c, false, fmt.Errorf("statetree: bad array index %q (length %d)", last, n)
		}
		return c, false, fmt.Errorf("statetree: parent is %s, not a map or array", c.kind.article())
	})
	if err != nil {
		return root, err
	}
	if nr.depth() > MaxDepth {
		return root, errTooDeep
	}
	return nr, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
