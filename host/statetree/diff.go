package statetree

import "strings"

// Change is one difference between two values, as reported by DiffPaths.
type Change struct {
	// Op is OpAdd (Path is only in the new value), OpRemove (only in the
	// old one) or OpReplace (in both, with different values).
	Op string
	// Path is the RFC 6901 JSON Pointer of the location.
	Path string
	// Old is the value in the old tree (null for OpAdd).
	Old Value
	// New is the value in the new tree (null for OpRemove).
	New Value
}

// Diff returns RFC 6902 ops (add, remove, replace) that turn a into b:
// Apply(a, Diff(a, b)) equals b. Maps are compared entry by entry and arrays
// element by element (growth is appended, shrinking removed from the end),
// recursing into containers present on both sides, so a change deep in a
// large tree gives one op at its own path. Only subtrees whose Merkle hashes
// differ are walked: comparing two versions of a tree that share most nodes
// costs time in proportion to what changed, not to the tree's size.
func Diff(a, b Value) []Op {
	var ops []Op
	d := differ{emit: func(c Change) bool {
		ops = append(ops, Op{Op: c.Op, Path: c.Path, Value: c.New})
		return true
	}}
	d.diff(a, b)
	return ops
}

// DiffPaths returns the locations where a and b differ, with the old and new
// values, in the order Diff would give its ops. It stops after limit changes
// if limit > 0. It is meant for reports, such as the comparison of a
// reducer's new version with the live view.
func DiffPaths(a, b Value, limit int) []Change {
	var cs []Change
	d := differ{emit: func(c Change) bool {
		cs = append(cs, c)
		return limit <= 0 || len(cs) < limit
	}}
	d.diff(a, b)
	return cs
}

// differ walks two trees; emit returns false to stop the walk.
type differ struct {
	path    []string // the current location, reused as a stack
	emit    func(Change) bool
	stopped bool
}

func (d *differ) change(op string, old, new Value) {
	if !d.stopped && !d.emit(Change{Op: op, Path: Path(d.path).String(), Old: old, New: new}) {
		d.stopped = true
	}
}

func (d *differ) push(tok string) { d.path = append(d.path, tok) }
func (d *differ) pop()            { d.path = d.path[:len(d.path)-1] }

func (d *differ) diff(a, b Value) {
	if d.stopped || Equal(a, b) {
		return
	}
	switch {
	case a.kind == KindMap && b.kind == KindMap:
		d.trie(a.node(), b.node())
	case a.kind == KindArray && b.kind == KindArray:
		ae, be := a.elems(), b.elems()
		for i := range min(len(ae), len(be)) {
			d.push(itoa(i))
			d.diff(ae[i], be[i])
			d.pop()
		}
		for i := len(ae); i < len(be); i++ {
			d.push(itoa(i))
			d.change(OpAdd, null, be[i])
			d.pop()
		}
		for i := len(ae) - 1; i >= len(be); i-- {
			d.push(itoa(i))
			d.change(OpRemove, ae[i], null)
			d.pop()
		}
	default:
		d.change(OpReplace, a, b)
	}
}

// entry reports one map entry present on one side only.
func (d *differ) entry(op, key string, v Value) {
	d.push(key)
	if op == OpAdd {
		d.change(OpAdd, null, v)
	} else {
		d.change(OpRemove, v, null)
	}
	d.pop()
}

// all reports every entry of subtree n as added or removed.
func (d *differ) all(op string, n *tnode) {
	n.each(func(k string, v Value) bool {
		d.entry(op, k, v)
		return !d.stopped
	})
}

// trie compares two map tries, skipping subtrees with equal hashes.
func (d *differ) trie(x, y *tnode) {
	switch {
	case d.stopped || x == y:
		return
	case x == nil:
		d.all(OpAdd, y)
		return
	case y == nil:
		d.all(OpRemove, x)
		return
	case x.hashNode() == y.hashNode():
		return
	case x.pfx == y.pfx:
		switch {
		case x.hasVal() && y.hasVal():
			d.push(x.pfx)
			d.diff(x.val(), y.val())
			d.pop()
		case x.hasVal():
			d.entry(OpRemove, x.pfx, x.val())
		case y.hasVal():
			d.entry(OpAdd, y.pfx, y.val())
		}
		xk, yk, xe, ye := x.kids(), y.kids(), x.edges(), y.edges()
		i, j := 0, 0
		for i < len(xk) || j < len(yk) {
			switch {
			case j == len(yk) || i < len(xk) && xe[i] < ye[j]:
				d.all(OpRemove, xk[i])
				i++
			case i == len(xk) || ye[j] < xe[i]:
				d.all(OpAdd, yk[j])
				j++
			default:
				d.trie(xk[i], yk[j])
				i, j = i+1, j+1
			}
		}
	case len(x.pfx) < len(y.pfx) && strings.HasPrefix(y.pfx, x.pfx):
		// All of y lies below one child slot of x.
		if x.hasVal() {
			d.entry(OpRemove, x.pfx, x.val())
		}
		b, xe := y.pfx[len(x.pfx)], x.edges()
		for i, k := range x.kids() {
			if xe[i] == b {
				d.trie(k, y)
			} else {
				d.all(OpRemove, k)
			}
		}
		if strings.IndexByte(xe, b) < 0 {
			d.all(OpAdd, y)
		}
	case len(y.pfx) < len(x.pfx) && strings.HasPrefix(x.pfx, y.pfx):
		if y.hasVal() {
			d.entry(OpAdd, y.pfx, y.val())
		}
		b, ye := x.pfx[len(y.pfx)], y.edges()
		for j, k := range y.kids() {
			if ye[j] == b {
				d.trie(x, k)
			} else {
				d.all(OpAdd, k)
			}
		}
		if strings.IndexByte(ye, b) < 0 {
			d.all(OpRemove, x)
		}
	default:
		d.all(OpRemove, x)
		d.all(OpAdd, y)
	}
}
