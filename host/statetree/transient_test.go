package statetree

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

// snapshotOf records a value's canonical JSON and hash, to check later that
// it never changed.
type snapshotOf struct {
	what string
	v    Value
	json string
	hash Hash
}

func snap(what string, v Value) snapshotOf {
	return snapshotOf{what, v, canonJSON(v), v.Hash()}
}

func (s snapshotOf) check(t *rapid.T) {
	if j := canonJSON(s.v); j != s.json {
		t.Fatalf("%s changed: was %s, now %s", s.what, s.json, j)
	}
	if h := s.v.Hash(); h != s.hash {
		t.Fatalf("%s: hash changed from %s to %s", s.what, s.hash, h)
	}
	checkFreshHash(t, s.what, s.v)
}

// checkFreshHash compares v's (possibly cached) hash with the hash of the
// same value rebuilt from scratch, which catches a stale cached hash in a
// node that was changed in place.
func checkFreshHash(t *rapid.T, what string, v Value) {
	fresh, err := FromJSON(v.AppendJSON(nil))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if fresh.Hash() != v.Hash() {
		t.Fatalf("%s: cached hash %s, rebuilt value's %s (%s)", what, v.Hash(), fresh.Hash(), canonJSON(v))
	}
}

type txAction struct {
	kind int // 0-5 set, 6-7 delete, 8 insert
	p    Path
	x    Value
}

func (a txAction) apply(tx *Tx) error {
	switch {
	case a.kind < 6:
		return tx.Set(a.p, a.x)
	case a.kind < 8:
		return tx.Delete(a.p)
	}
	return tx.Insert(a.p, a.x)
}

// TestPropertyTransientTx interleaves many changes in one Tx (whose nodes
// are edited in place), mixed with reads that hand out values, hashing of
// the uncommitted root and commits, and checks that
//
//   - the result, the recorded ops and the errors equal those of applying
//     the same changes one Tx (one commit) at a time;
//   - every value handed out before (the start root, committed roots,
//     values from Get and Root, the ops' values) is unchanged afterwards,
//     hashes included;
//   - the cached hashes of the result equal those of the same value built
//     from scratch, and the tries are canonical.
func TestPropertyTransientTx(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		start := genValue(3).Draw(t, "root")
		if rapid.Bool().Draw(t, "mapRoot") {
			start = EmptyMap()
		}
		var kept []snapshotOf
		kept = append(kept, snap("the start root", start))

		tx := start.Begin()
		ref := start // the one-Tx-at-a-time reference
		var ops, refOps []Op
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for s := range steps {
			switch rapid.IntRange(0, 19).Draw(t, "what") {
			case 0: // read a value out of the Tx: it must never change
				p := genPath().Draw(t, "getPath")
				if v, ok := tx.Get(p); ok {
					kept = append(kept, snap(fmt.Sprintf("Get(%s) at step %d", p, s), v))
				}
				continue
			case 1:
				kept = append(kept, snap(fmt.Sprintf("Root() at step %d", s), tx.Root()))
				continue
			case 2: // hash the uncommitted root without ending ownership
				tx.root.Hash()
				continue
			case 3:
				root, o := tx.Commit()
				ops = append(ops, o...)
				kept = append(kept, snap(fmt.Sprintf("Commit() at step %d", s), root))
				continue
			}
			a := txAction{kind: rapid.IntRange(0, 8).Draw(t, "action"), p: genPath().Draw(t, "path"), x: genValue(2).Draw(t, "x")}
			err := a.apply(tx)
			rt := ref.Begin()
			refErr := a.apply(rt)
			if (err == nil) != (refErr == nil) || err != nil && err.Error() != refErr.Error() {
				t.Fatalf("step %d: %v, one at a time: %v", s, err, refErr)
			}
			var o []Op
			ref, o = rt.Commit()
			refOps = append(refOps, o...)
			if got := tx.root; canonJSON(got) != canonJSON(ref) { // not Get: it would end the ownership
				t.Fatalf("step %d: in the Tx %s, one at a time %s", s, canonJSON(got), canonJSON(ref))
			}
		}
		root, o := tx.Commit()
		ops = append(ops, o...)
		if canonJSON(root) != canonJSON(ref) || root.Hash() != ref.Hash() {
			t.Fatalf("one Tx gave %s, one at a time %s", canonJSON(root), canonJSON(ref))
		}
		if opsJSON(ops) != opsJSON(refOps) {
			t.Fatalf("one Tx recorded %s, one at a time %s", opsJSON(ops), opsJSON(refOps))
		}
		applied, err := Apply(start, ops)
		if err != nil || canonJSON(applied) != canonJSON(root) {
			t.Fatalf("Apply(start, ops) = %s, %v; want %s", canonJSON(applied), err, canonJSON(root))
		}
		checkTree(t, root)
		checkFreshHash(t, "the result", root)
		for _, k := range kept {
			k.check(t)
		}
		for i, op := range ops {
			if op.Op != OpRemove {
				checkFreshHash(t, fmt.Sprintf("op %d's value", i), op.Value)
			}
		}
	})
}

// TestPropertyTransientWideMap does the same for many changes to one large
// map (wide trie nodes gaining and losing children in place).
func TestPropertyTransientWideMap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		alphabet := []string{"", "a", "b", "c", "x", "y", "z", "0", "1", "ab", "ac", "abc"}
		key := rapid.Custom(func(t *rapid.T) string {
			s := ""
			for range rapid.IntRange(1, 3).Draw(t, "parts") {
				s += rapid.SampledFrom(alphabet).Draw(t, "part")
			}
			return s
		})
		m := map[string]Value{}
		for range rapid.IntRange(0, 60).Draw(t, "initial") {
			m[key.Draw(t, "k")] = Int(1)
		}
		start, _ := Map(m)
		before := snap("the start map", start)
		tx := start.Begin()
		ref := start
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			p := Path{key.Draw(t, "key")}
			var a txAction
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				a = txAction{kind: 0, p: p, x: Int(rapid.Int64Range(0, 3).Draw(t, "v"))}
			case 1:
				a = txAction{kind: 0, p: append(p, "sub"), x: Bool(true)}
			default:
				a = txAction{kind: 6, p: p}
			}
			err := a.apply(tx)
			rt := ref.Begin()
			if refErr := a.apply(rt); (err == nil) != (refErr == nil) {
				t.Fatalf("%v vs %v", err, refErr)
			}
			ref, _ = rt.Commit()
			if rapid.IntRange(0, 9).Draw(t, "hash") == 0 {
				tx.root.Hash()
			}
		}
		root, _ := tx.Commit()
		if canonJSON(root) != canonJSON(ref) || root.Hash() != ref.Hash() {
			t.Fatalf("one Tx gave %s, one at a time %s", canonJSON(root), canonJSON(ref))
		}
		checkTree(t, root)
		checkFreshHash(t, "the result", root)
		before.check(t)
	})
}

// TestTransientNestedDepth is a regression test: a nested map changed in
// place shares its node with the new value, so the old depth of the entry
// must come from the trie, not from the (already changed) old value.
func TestTransientNestedDepth(t *testing.T) {
	tx := Null().Begin()
	for _, s := range []struct {
		p Path
		x Value
	}{{Path{"a"}, EmptyMap()}, {Path{"a", "a"}, EmptyMap()}, {Path{""}, Null()}, {Path{"a", "a"}, Null()}} {
		if err := tx.Set(s.p, s.x); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := tx.Commit()
	if got := root.depth(); got != 2 {
		t.Fatalf("depth of %s = %d, want 2", root, got)
	}
	if a, _ := root.Lookup("a"); a.node().depth() != 0 {
		t.Fatalf("trie depth of %s = %d, want 0", a, a.node().depth())
	}
	if root.node().depth() != 1 {
		t.Fatalf("root trie depth %d, want 1", root.node().depth())
	}
}

// TestPropertyRollback runs "events" of a few changes each in one Tx, as a
// view applies a run of events, and rejects some of them with Rollback to
// the op count at the event's start. The result, and each accepted event's
// ops, must equal those of applying only the accepted events one Tx at a
// time; values handed out before must not change, and the rebuilt tries
// must be canonical with fresh hashes.
func TestPropertyRollback(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		start := genValue(3).Draw(t, "root")
		if rapid.Bool().Draw(t, "mapRoot") {
			start = EmptyMap()
		}
		kept := []snapshotOf{snap("the start root", start)}
		tx := start.Begin()
		ref := start
		var ops, refOps []Op
		for ev := range rapid.IntRange(1, 30).Draw(t, "events") {
			mark := len(tx.Ops())
			rt := ref.Begin()
			for range rapid.IntRange(0, 4).Draw(t, "changes") {
				a := txAction{kind: rapid.IntRange(0, 8).Draw(t, "action"), p: genPath().Draw(t, "path"), x: genValue(2).Draw(t, "x")}
				err, refErr := a.apply(tx), a.apply(rt)
				if (err == nil) != (refErr == nil) {
					t.Fatalf("event %d: %v, one at a time: %v", ev, err, refErr)
				}
				if rapid.IntRange(0, 5).Draw(t, "get") == 0 {
					if v, ok := tx.Get(genPath().Draw(t, "getPath")); ok {
						kept = append(kept, snap(fmt.Sprintf("a Get in event %d", ev), v))
					}
				}
			}
			if rapid.IntRange(0, 2).Draw(t, "reject") == 0 {
				if err := tx.Rollback(mark); err != nil {
					t.Fatal(err)
				}
				if len(tx.Ops()) != mark {
					t.Fatalf("event %d: %d ops after Rollback(%d)", ev, len(tx.Ops()), mark)
				}
			} else {
				var o []Op
				ref, o = rt.Commit()
				refOps = append(refOps, o...)
				if got := opsJSON(tx.Ops()[mark:]); got != opsJSON(o) {
					t.Fatalf("event %d recorded %s in the run, %s alone", ev, got, opsJSON(o))
				}
			}
			if canonJSON(tx.root) != canonJSON(ref) {
				t.Fatalf("after event %d: in the run %s, accepted events alone %s", ev, canonJSON(tx.root), canonJSON(ref))
			}
			if rapid.IntRange(0, 9).Draw(t, "commit") == 0 {
				root, o := tx.Commit()
				ops = append(ops, o...)
				kept = append(kept, snap(fmt.Sprintf("Commit after event %d", ev), root))
			}
		}
		if err := tx.Rollback(len(tx.Ops()) + 1); err == nil {
			t.Fatal("Rollback beyond the ops succeeded")
		}
		root, o := tx.Commit()
		ops = append(ops, o...)
		if canonJSON(root) != canonJSON(ref) || root.Hash() != ref.Hash() {
			t.Fatalf("the run gave %s, accepted events alone %s", canonJSON(root), canonJSON(ref))
		}
		if opsJSON(ops) != opsJSON(refOps) {
			t.Fatalf("the run recorded %s, accepted events alone %s", opsJSON(ops), opsJSON(refOps))
		}
		checkTree(t, root)
		checkFreshHash(t, "the result", root)
		for _, k := range kept {
			k.check(t)
		}
	})
}

func TestRollbackBeforeEarlierPoint(t *testing.T) {
	tx := EmptyMap().Begin()
	for i, k := range []string{"a", "b", "c"} {
		if err := tx.Set(Path{k}, Int(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(2); err != nil {
		t.Fatal(err)
	}
	if got := canonJSON(tx.root); got != `{"a":0,"b":1}` {
		t.Fatalf("after Rollback(2): %s", got)
	}
	if err := tx.Rollback(1); err == nil {
		t.Fatal("Rollback before an earlier rollback point succeeded")
	}
	if got := canonJSON(tx.root); got != `{"a":0,"b":1}` {
		t.Fatalf("a refused Rollback changed the root: %s", got)
	}
}

// TestTxResetOps checks that a Tx that is Reset and used again sizes its
// op slice after the last Commit's, never writes over ops it handed out,
// and starts from the root it is given, dropping uncommitted changes.
func TestTxResetOps(t *testing.T) {
	root := EmptyMap()
	tx := root.Begin()
	for i := range 100 {
		if err := tx.Set(Path{"k" + itoa(i)}, Int(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	root, ops := tx.Commit()
	keep := fmt.Sprint(ops)
	tx.Reset(root)
	for i := range 100 {
		if err := tx.Set(Path{"k" + itoa(i)}, Int(int64(-i-1))); err != nil {
			t.Fatal(err)
		}
		if i == 0 && cap(tx.Ops()) < 100 {
			t.Fatalf("after a Commit of 100 ops and Reset, the op slice has room for %d", cap(tx.Ops()))
		}
	}
	if got := fmt.Sprint(ops); got != keep {
		t.Fatalf("committed ops changed after Reset:\nwas %s\nnow %s", keep, got)
	}
	ops2 := tx.Ops()
	keep2 := fmt.Sprint(ops2)
	tx.Reset(root) // drops the 100 uncommitted changes
	if got := tx.Root(); !Equal(got, root) {
		t.Fatalf("Reset(root): root %s, want %s", got, root)
	}
	if len(tx.Ops()) != 0 {
		t.Fatalf("Reset left %d ops", len(tx.Ops()))
	}
	if err := tx.Set(Path{"k0"}, Int(7)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete(Path{"k1"}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ops2); got != keep2 {
		t.Fatalf("ops returned by Ops before Reset changed:\nwas %s\nnow %s", keep2, got)
	}
	if v, _ := root.Get(Path{"k0"}); v.Int() != 0 {
		t.Fatalf("the committed root changed: k0 = %s", v)
	}
	nr, got := tx.Commit()
	if len(got) != 2 || got[0].Path != "/k0" || got[1].Op != OpRemove {
		t.Fatalf("ops after Reset: %v", got)
	}
	if v, _ := nr.Get(Path{"k0"}); v.Int() != 7 {
		t.Fatalf("k0 = %s, want 7", v)
	}
}
