//go:build !wasip1

package nodb_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/abi/abitest"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

func load(t *testing.T) *abitest.Vectors { return abitest.Load(t) }

// TestVectorsSDK: the SDK's encoder produces the vectors' CBOR from Go
// values, and its reader turns the vectors' CBOR back into the same JSON.
func TestVectorsSDK(t *testing.T) {
	v := load(t)
	for _, x := range v.Values {
		want, _ := hex.DecodeString(x.CBOR)
		val := nodb.ValueOf(want)
		// Reader: CBOR -> JSON equals the vector's JSON semantically.
		var a, b any
		if err := json.Unmarshal([]byte(x.JSON), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(val.JSON()), &b); err != nil {
			t.Fatalf("%s: %q: %v", x.Name, val.JSON(), err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s: reader gives %s want %s", x.Name, jb, ja)
		}
		// Writer: the Go value (in source order) encodes to the same bytes.
		got, err := nodb.AppendCBOR(nil, goValue(t, x.JSON))
		if err != nil {
			t.Fatalf("%s: %v", x.Name, err)
		}
		if hex.EncodeToString(got) != x.CBOR {
			t.Errorf("%s: writer gives %x want %s", x.Name, got, x.CBOR)
		}
	}
}

// goValue turns JSON into SDK values that keep key order (Map) and the
// int/float distinction of ABI.md.
func goValue(t *testing.T, js string) any {
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	var walk func() any
	walk = func() any {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch x := tok.(type) {
		case json.Delim:
			if x == '[' {
				var l nodb.ListValue
				for d.More() {
					l = append(l, walk())
				}
				d.Token()
				return l
			}
			m := nodb.Map()
			for d.More() {
				k, _ := d.Token()
				m = append(m, k.(string), walk())
			}
			d.Token()
			return m
		case json.Number:
			s := string(x)
			if i, err := strconv.ParseInt(s, 10, 64); err == nil && !containsAny(s, ".eE") {
				return i
			}
			f, _ := strconv.ParseFloat(s, 64)
			return f
		}
		return tok
	}
	return walk()
}

func containsAny(s, chars string) bool {
	for _, c := range chars {
		for _, d := range s {
			if c == d {
				return true
			}
		}
	}
	return false
}

// TestVectorsEventsSDK: the frames of the vectors decode into the Event
// fields handlers see.
func TestVectorsEventsSDK(t *testing.T) {
	v := load(t)
	var seen []string
	nodb.On("vectors/probe", func(s *nodb.State, e nodb.Event) error { return nil })
	for _, x := range v.Events {
		typ := x.Type
		nodb.On(typ, func(s *nodb.State, e nodb.Event) error {
			seen = append(seen, e.Type())
			if strconv.FormatUint(e.Seq(), 10) != x.Seq || strconv.FormatInt(e.Time(), 10) != x.Time ||
				strconv.FormatUint(e.PSeq(), 10) != x.PSeq || e.Producer() != x.Producer {
				t.Errorf("%s: event fields %d %d %d %q", x.Name, e.Seq(), e.Time(), e.PSeq(), e.Producer())
			}
			want, _ := abi.AppendJSONAsCBOR(nil, []byte(x.Payload))
			if x.Payload == "" {
				want = []byte{0xf6}
			}
			if hex.EncodeToString(e.Payload().Raw()) != hex.EncodeToString(want) {
				t.Errorf("%s: payload %x", x.Name, e.Payload().Raw())
			}
			return nil
		})
		seq, _ := strconv.ParseUint(x.Seq, 10, 64)
		tm, _ := strconv.ParseInt(x.Time, 10, 64)
		pseq, _ := strconv.ParseUint(x.PSeq, 10, 64)
		if err := nodb.NewHarness().ReduceEvent(seq, tm, x.Producer, pseq, x.Type, []byte(x.Payload)); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != len(v.Events) {
		t.Errorf("handlers ran %d times", len(seen))
	}
}

func TestValueAccess(t *testing.T) {
	cb, _ := abi.AppendJSONAsCBOR(nil, []byte(`{"a":{"b":[10,{"c":"x"}],"f":2.0,"h":1.5},"t":true,"n":null,"s":"str","k~/":1}`))
	v := nodb.ValueOf(cb)
	checks := []struct {
		got, want any
	}{
		{v.Get("/a/b/0").Int(), int64(10)},
		{v.Get("/a/b/1/c").Str(), "x"},
		{v.Get("/a/f").Int(), int64(2)},
		{v.Get("/a/h").Float(), 1.5},
		{v.Get("/a/h").Int(), int64(0)},
		{v.Key("t").Bool(), true},
		{v.Key("n").IsNull(), true},
		{v.Key("missing").Exists(), false},
		{v.Get("/s/x").Exists(), false},
		{v.Get("/a/b/9").Exists(), false},
		{v.Get("/k~0~1").Int(), int64(1)},
		{v.Len(), 5},
		{v.Get("/a").Kind(), nodb.KindMap},
		{len(v.Keys()), 5},
	}
	for n, c := range checks {
		if c.got != c.want {
			t.Errorf("check %d: got %v want %v", n, c.got, c.want)
		}
	}
}

func TestStateErrors(t *testing.T) {
	h := nodb.NewHarness()
	nodb.On("state/errors", func(s *nodb.State, e nodb.Event) error {
		if err := s.Set("/x", "scalar"); err != nil {
			return err
		}
		err := s.Set("/x/y", 1)
		if !errors.Is(err, abi.StatusTypeMismatch) {
			t.Errorf("set through scalar: %v", err)
		}
		if err := s.Set("/__proto__/x", 1); !errors.Is(err, abi.StatusInvalidPath) {
			t.Errorf("forbidden key: %v", err)
		}
		if err := s.Set("/f", func() {}); !errors.Is(err, nodb.ErrUnsupported) {
			t.Errorf("func value: %v", err)
		}
		if err := s.Delete("/nothing/here"); err != nil {
			t.Errorf("delete missing: %v", err)
		}
		return s.Set("/m", map[string]any{"b": 1, "a": []string{"x"}, "cc": nodb.JSON(`{"z":null}`)})
	})
	if err := h.Reduce("state/errors", "{}"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.JSON("/m"), `{"a":["x"],"b":1,"cc":{"z":null}}`; got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

func TestMemStoreArrays(t *testing.T) {
	st := nodb.NewMemStore()
	l, _ := nodb.AppendCBOR(nil, nodb.List(1, 2))
	for _, step := range []struct {
		op, path string
		val      []byte
		want     string
	}{
		{"set", "/l", l, `{"l":[1,2]}`},
		{"set", "/l/-", []byte{0x03}, `{"l":[1,2,3]}`},
		{"set", "/l/0", []byte{0x09}, `{"l":[9,2,3]}`},
		{"set", "/l/3", []byte{0x04}, `{"l":[9,2,3,4]}`},
		{"del", "/l/1", nil, `{"l":[9,3,4]}`},
		{"set", "/a/b/c", []byte{0xf5}, `{"a":{"b":{"c":true}},"l":[9,3,4]}`},
	} {
		var err error
		if step.op == "set" {
			err = st.Set(step.path, step.val)
		} else {
			err = st.Delete(step.path)
		}
		if err != nil || st.JSON() != step.want {
			t.Fatalf("%s %s: %v %s", step.op, step.path, err, st.JSON())
		}
	}
	if err := st.Set("/l/9", []byte{1}); !errors.Is(err, abi.StatusInvalidPath) {
		t.Errorf("index past end: %v", err)
	}
	if err := st.Delete("/zz"); !errors.Is(err, abi.StatusNotFound) {
		t.Errorf("delete missing: %v", err)
	}
}

// TestEachKeysOutliveReads: the keys Each hands out for a map read with
// View (which lies in the read buffer, reused by the next read) may be kept
// like any string: they stay intact through later reads, of any size, and
// through deletes.
func TestEachKeysOutliveReads(t *testing.T) {
	h := nodb.NewHarness()
	for _, n := range []int{3, 31, 32, 200} {
		pre := "m" + strconv.Itoa(n)
		var keys []string
		nodb.On("each/"+pre, func(s *nodb.State, e nodb.Event) error {
			keys = nil
			s.View("/" + pre).Each(func(k string, v nodb.Value) bool {
				if v.Str() != "value "+k {
					t.Errorf("%s: value of %q is %s", pre, k, v)
				}
				keys = append(keys, k)
				if err := s.Delete(nodb.Path(pre, k)); err != nil {
					t.Error(err)
				}
				return true
			})
			// Reads that would overwrite a reused buffer: a value larger
			// than the map that fits the buffer, then one that does not.
			s.GetStr("/other")
			s.View("/big").Len()
			return nil
		})
		for i := range n {
			k := strconv.Itoa(i)
			if err := h.Reduce("each/set", `{"p":"/`+pre+`/`+k+`","v":"value `+k+`"}`); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Reduce("each/"+pre, `{}`); err != nil {
			t.Fatal(err)
		}
		if len(keys) != n {
			t.Fatalf("%d entries: Each gave %d keys", n, len(keys))
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if i, err := strconv.Atoi(k); err != nil || i >= n || seen[k] {
				t.Fatalf("%d entries: key %q after later reads", n, k)
			}
			seen[k] = true
		}
		if got := h.JSON("/" + pre); got != "{}" {
			t.Fatalf("%d entries: after deleting each: %s", n, got)
		}
	}
}

func init() {
	nodb.On("each/set", func(s *nodb.State, e nodb.Event) error {
		if e.Str("p") == "/m3/0" { // once: the reads of the test's handler
			big := strings.Repeat("x", 100_000)
			if err := s.SetStr("/big", big); err != nil {
				return err
			}
			if err := s.SetStr("/other", strings.Repeat("y", 3000)); err != nil {
				return err
			}
		}
		return s.SetStr(e.Str("p"), e.Str("v"))
	})
}

// TestMemStoreMatchesHostState: MemStore answers as the host's state
// (host/statetree through host/view.TxState) does where paths go through
// null, scalars and missing array items: a set through a null replaces it
// with the missing maps, in a map as in an array; a delete below anything
// that does not exist is StatusNotFound, which State.Delete ignores.
func TestMemStoreMatchesHostState(t *testing.T) {
	st := nodb.NewMemStore()
	v, _ := nodb.AppendCBOR(nil, nodb.JSON(`{"n":null,"l":[null],"x":"s"}`))
	if err := st.Set("/s", v); err != nil {
		t.Fatal(err)
	}
	if err := st.Set("/s/n/a/b", []byte{0x01}); err != nil {
		t.Errorf("set through a null in a map: %v", err)
	}
	if err := st.Set("/s/l/0/x", []byte{0x02}); err != nil {
		t.Errorf("set through a null in an array: %v", err)
	}
	if got, want := st.JSON(), `{"s":{"l":[{"x":2}],"n":{"a":{"b":1}},"x":"s"}}`; got != want {
		t.Errorf("got %s want %s", got, want)
	}
	for _, p := range []string{"/s/x/y/z", "/s/l/5/x", "/s/l/-/x", "/s/l/0/x/y/z", "/none/a/b"} {
		if err := st.Delete(p); !errors.Is(err, abi.StatusNotFound) {
			t.Errorf("delete %s: %v, want StatusNotFound", p, err)
		}
	}
}

// TestHarnessPatchAddInserts: Harness.Patch applies an input's ops as the
// host's mirror of an input does (statetree.Apply, RFC 6902): an add at an
// array index inserts there, shifting the items after it; replace
// replaces.
func TestHarnessPatchAddInserts(t *testing.T) {
	st := nodb.NewMemStore()
	for _, step := range []struct{ ops, want string }{
		{`[{"op":"add","path":"/l","value":[1,2]}]`, `{"l":[1,2]}`},
		{`[{"op":"add","path":"/l/0","value":9}]`, `{"l":[9,1,2]}`},
		{`[{"op":"add","path":"/l/2","value":8}]`, `{"l":[9,1,8,2]}`},
		{`[{"op":"add","path":"/l/-","value":7}]`, `{"l":[9,1,8,2,7]}`},
		{`[{"op":"replace","path":"/l/0","value":0}]`, `{"l":[0,1,8,2,7]}`},
	} {
		if err := st.ApplyJSONPatch(step.ops); err != nil || st.JSON() != step.want {
			t.Fatalf("%s: %v %s, want %s", step.ops, err, st.JSON(), step.want)
		}
	}
}

// TestHarnessRefusesInvalidUTF8Paths: as on the host, a path that is not
// UTF-8 is StatusInvalidPath, and nothing is stored.
func TestHarnessRefusesInvalidUTF8Paths(t *testing.T) {
	h := nodb.NewHarness()
	nodb.On("state/utf8", func(s *nodb.State, e nodb.Event) error {
		if err := s.Set("/k\xff", 1); !errors.Is(err, abi.StatusInvalidPath) {
			t.Errorf("set: %v, want StatusInvalidPath", err)
		}
		return nil
	})
	if err := h.Reduce("state/utf8", "{}"); err != nil {
		t.Fatal(err)
	}
	if got := h.JSON(""); got != `{}` {
		t.Errorf("state %s, want {}", got)
	}
}

// TestHarnessStateDepth: as on the host, a set may nest the state at most
// abi.MaxStateDepth deep, counting the path's tokens and the value's own
// nesting, each within abi.MaxDepth: one level over is StatusTooLarge and
// stores nothing, not even the intermediate maps. (host/view's
// TestStateStatusesMatchTheHarness runs the same calls on the host.)
func TestHarnessStateDepth(t *testing.T) {
	h := nodb.NewHarness()
	nested := func(n int) nodb.JSON { // n arrays, the innermost empty
		return nodb.JSON(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	path := func(n int) string { return "/a" + strings.Repeat("/b", n-1) } // n tokens
	nodb.On("state/depth", func(s *nodb.State, e nodb.Event) error {
		if err := s.Set(path(abi.MaxDepth), nested(abi.MaxDepth+1)); !errors.Is(err, abi.StatusTooLarge) {
			t.Errorf("%d tokens, %d deep: %v, want StatusTooLarge", abi.MaxDepth, abi.MaxDepth+1, err)
		}
		if s.Has("/a") {
			t.Error("the refused set created /a")
		}
		if err := s.Set(path(abi.MaxDepth), nested(abi.MaxDepth)); err != nil {
			t.Errorf("%d tokens, %d deep: %v", abi.MaxDepth, abi.MaxDepth, err)
		}
		if err := s.Set(path(abi.MaxDepth-1), nested(abi.MaxDepth+1)); err != nil {
			t.Errorf("%d tokens, %d deep: %v", abi.MaxDepth-1, abi.MaxDepth+1, err)
		}
		return nil
	})
	if err := h.Reduce("state/depth", "{}"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.JSON(path(abi.MaxDepth-1)), string(nested(abi.MaxDepth+1)); got != want {
		t.Errorf("got %.20s..., want %.20s...", got, want)
	}
}

// TestMemStoreNegativeZero: MemStore stores -0.0 as 0, as the host's state
// does (statetree.NewFloat), so a reducer sees the same value natively and
// in the host (math.Signbit, 1/x).
func TestMemStoreNegativeZero(t *testing.T) {
	st := nodb.NewMemStore()
	for _, v := range [][]byte{{0xf9, 0x80, 0x00}, {0xfa, 0x80, 0, 0, 0}, {0xfb, 0x80, 0, 0, 0, 0, 0, 0, 0}} {
		if err := st.Set("/f", v); err != nil {
			t.Fatal(err)
		}
		if got, want := st.CBOR(), []byte{0xa1, 0x61, 0x66, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(got, want) {
			t.Errorf("set %x: state %x, want %x", v, got, want)
		}
	}
}

// TestDeclarationsTheHostRefusesPanic: On and OnPatch panic (a trap in
// _initialize: the module is refused at load) for a declaration the host
// refuses (ABI.md 6.1, 13.1), natively as in Wasm. They ignored the status:
// the host then delivered none of the type's events (or, if nothing else
// was declared, every type; or treated a cascade as a reducer) while the
// Harness delivered them.
func TestDeclarationsTheHostRefusesPanic(t *testing.T) {
	panics := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	h := func(*nodb.State, nodb.Event) error { return nil }
	panics("On empty", func() { nodb.On("", h) })
	panics("On too long", func() { nodb.On(strings.Repeat("t", abi.MaxTypeSize+1), h) })
	panics("On invalid UTF-8", func() { nodb.On("t\xff", h) })
	p := func(*nodb.State, nodb.Patch) error { return nil }
	panics("OnPatch bad name", func() { nodb.OnPatch("no spaces", p) })
	panics("OnPatch empty", func() { nodb.OnPatch("", p) })
	for _, c := range nodb.Consumes() {
		if c == "" || strings.HasPrefix(c, "ttt") || strings.HasPrefix(c, "t\xff") {
			t.Errorf("declared %q", c)
		}
	}
}

// TestHarnessGetTooLarge: a value over abi.MaxValueSize is not returned by
// state_get, natively as on the host (StatusTooLarge: State.Get reports it
// missing); the Harness returned it.
func TestHarnessGetTooLarge(t *testing.T) {
	h := nodb.NewHarness()
	half := append([]byte{0x7a, 0, 0x90, 0, 0}, make([]byte, 9<<20)...) // a text of 9 MiB
	for _, p := range []string{"/a", "/b"} {
		if err := h.Store.Set(p, half); err != nil {
			t.Fatal(err)
		}
	}
	nodb.On("state/toolarge", func(s *nodb.State, e nodb.Event) error {
		if _, ok := s.Get("/a"); !ok {
			t.Error("/a: missing")
		}
		if _, ok := s.Get(""); ok {
			t.Error("the root, over 16 MiB: returned")
		}
		return nil
	})
	if err := h.Reduce("state/toolarge", "{}"); err != nil {
		t.Fatal(err)
	}
}
