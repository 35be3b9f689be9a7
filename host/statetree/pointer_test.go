package statetree

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// TestPropertyPointerOps runs the same changes through Set and Delete on
// one Tx and through SetPointer and RemovePointer on another: the pointer
// forms must give the same errors, roots and ops, byte for byte, though
// their op paths are cut from the parsed text instead of built.
func TestPropertyPointerOps(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		root := genValue(2).Draw(t, "root")
		if rapid.Bool().Draw(t, "mapRoot") {
			root = EmptyMap()
		}
		a, b := root.Begin(), root.Begin()
		var q Pointer
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			p := genPath().Draw(t, "path")
			text := p.String()
			if err := q.Parse(text); err != nil {
				continue // a forbidden token: Set rejects it too
			}
			if q.String() != text || !slices.Equal(q.Path(), p) {
				t.Fatalf("Parse(%q) = %q %q", text, q.String(), q.Path())
			}
			var errA, errB error
			if rapid.IntRange(0, 2).Draw(t, "action") < 2 {
				x := genValue(2).Draw(t, "x")
				errA, errB = a.Set(p, x), b.SetPointer(&q, x)
			} else {
				var okA, okB bool
				okA, errA = a.Remove(p)
				okB, errB = b.RemovePointer(&q)
				if okA != okB {
					t.Fatalf("Remove(%s) = %v, RemovePointer = %v", text, okA, okB)
				}
			}
			if (errA == nil) != (errB == nil) {
				t.Fatalf("at %q: Set/Remove error %v, pointer form %v", text, errA, errB)
			}
			if rapid.IntRange(0, 4).Draw(t, "peek") == 0 {
				a.Get(p) // end in-place editing on one side only
			}
		}
		ra, opsA := a.Commit()
		rb, opsB := b.Commit()
		if !Equal(ra, rb) {
			t.Fatalf("roots differ: %s vs %s", canonJSON(ra), canonJSON(rb))
		}
		if opsJSON(opsA) != opsJSON(opsB) {
			t.Fatalf("ops differ:\n%s\n%s", opsJSON(opsA), opsJSON(opsB))
		}
		for i := range opsA {
			if opsA[i].Op != opsB[i].Op || opsA[i].Path != opsB[i].Path {
				t.Fatalf("op %d: %s %q vs %s %q", i, opsA[i].Op, opsA[i].Path, opsB[i].Op, opsB[i].Path)
			}
		}
		checkTree(t, rb)
	})
}

func TestPointerOpPaths(t *testing.T) {
	root, err := FromJSON([]byte(`{"a/b":{"~":[1,2]},"x":null}`))
	if err != nil {
		t.Fatal(err)
	}
	tx := root.Begin()
	var q Pointer
	for _, c := range []struct {
		ptr  string
		x    Value
		want string // the op recorded, "" for none
	}{
		{"/a~1b/~0/1", Int(5), "replace /a~1b/~0/1"},
		{"/a~1b/~0/-", Int(6), "add /a~1b/~0/2"},
		{"/a~1b/~0/3", Int(7), "add /a~1b/~0/3"},
		{"/a~1b/new/deeper/still", Int(8), "add /a~1b/new"},
		{"/x/y/z", Int(9), "replace /x"},
		{"/a~1b/~0/0", Int(1), ""},
		{"", Int(1), "replace "},
	} {
		if err := q.Parse(c.ptr); err != nil {
			t.Fatal(err)
		}
		n := len(tx.Ops())
		if err := tx.SetPointer(&q, c.x); err != nil {
			t.Fatalf("SetPointer(%q): %v", c.ptr, err)
		}
		got := ""
		if ops := tx.Ops(); len(ops) > n {
			got = ops[n].Op + " " + ops[n].Path
		}
		if got != c.want {
			t.Errorf("SetPointer(%q) recorded %q, want %q", c.ptr, got, c.want)
		}
	}
	if err := q.Parse(""); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.RemovePointer(&q); err == nil {
		t.Error("RemovePointer of the root succeeded")
	}
	for _, bad := range []string{"a", "/~2", "/x/__proto__", "/\xff"} {
		if err := q.Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		} else if q.String() != "" || len(q.Path()) != 0 {
			t.Errorf("failed Parse(%q) left %q %q", bad, q.String(), q.Path())
		}
	}
}

// refParsePath is ParsePath as it was written before its one-pass split:
// the reference FuzzParsePath compares it with.
func refParsePath(s string) (Path, error) {
	if s == "" {
		return Path{}, nil
	}
	if s[0] != '/' {
		return nil, errors.New("no leading slash")
	}
	if !utf8.ValidString(s) {
		return nil, ErrInvalidUTF8
	}
	var p Path
	for _, tok := range strings.Split(s[1:], "/") {
		if strings.Contains(strings.NewReplacer("~0", "", "~1", "").Replace(tok), "~") {
			return nil, errors.New("bad escape")
		}
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		if err := checkKey(tok); err != nil {
			return nil, err
		}
		p = append(p, tok)
	}
	return p, nil
}

// FuzzParsePath checks ParsePath and Pointer.Parse against refParsePath:
// the same tokens, the same class of error (in the same order of
// precedence: UTF-8, then each token's escapes, then its key), and, on
// success, Path.String giving the text back.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"", "/", "//", "/a~1b/~0c/~01", "/todos/k3j9x0qa/done", "a", "/~", "/~2", "/a~",
		"/__proto__", "/a/constructor/~2", "/\xff/__proto__", "/prototype~", "/é/~1", "/~01~10", "/a/\xc3", "/constructor~0", "/\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, werr := refParsePath(s)
		got, err := ParsePath(s)
		if (err == nil) != (werr == nil) || errors.Is(err, ErrInvalidUTF8) != errors.Is(werr, ErrInvalidUTF8) ||
			errors.Is(err, ErrForbiddenKey) != errors.Is(werr, ErrForbiddenKey) {
			t.Fatalf("ParsePath(%q) error %v, want %v", s, err, werr)
		}
		if err != nil {
			return
		}
		if !slices.Equal(got, want) || got.String() != s {
			t.Fatalf("ParsePath(%q) = %q (String %q), want %q", s, got, got.String(), want)
		}
		q := Pointer{path: Path{"stale", "tokens", "here"}}
		if err := q.Parse(s); err != nil || !slices.Equal(q.Path(), want) || q.String() != s {
			t.Fatalf("Parse(%q) = %q %q, %v", s, q.String(), q.Path(), err)
		}
	})
}

// TestPointerParseSame checks that parsing the string a Pointer holds
// again keeps it, and that any other string, equal or not, is parsed.
func TestPointerParseSame(t *testing.T) {
	var q Pointer
	check := func(s string, want ...string) {
		t.Helper()
		if err := q.Parse(s); err != nil || q.String() != s || !slices.Equal(q.Path(), Path(want)) {
			t.Fatalf("Parse(%q) = %q %q, %v; want %q", s, q.String(), q.Path(), err, want)
		}
	}
	ab := string([]byte("/a/b"))
	check(ab, "a", "b")
	check(ab, "a", "b")
	check(string([]byte("/a/c")), "a", "c") // as long, elsewhere
	check(ab[:2], "a")                      // a prefix of the same bytes
	check(string([]byte("/a/b")), "a", "b") // equal, elsewhere
	check("", []string{}...)
	check("")
	if err := q.Parse("/__proto__"); err == nil {
		t.Fatal("Parse of a forbidden key succeeded")
	}
	check(ab, "a", "b")
}
