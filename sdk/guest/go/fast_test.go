//go:build !wasip1

package nodb

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/abi"
)

// The old, obviously correct readers (abi.SkipValue-based), as references
// for the fast ones.

func refNext(b []byte) (Value, []byte, bool) {
	n, st := abi.SkipValue(b)
	if st != abi.StatusOK {
		return Value{}, nil, false
	}
	return Value{b: b[:n:n]}, b[n:], true
}

func refKey(v Value, key string) Value {
	n, b, ok := v.container(abi.MajorMap)
	if !ok {
		return Value{}
	}
	for i := uint64(0); i < n; i++ {
		var k, val Value
		if k, b, ok = refNext(b); !ok {
			return Value{}
		}
		if val, b, ok = refNext(b); !ok {
			return Value{}
		}
		if t, ok := k.text(); ok && string(t) == key {
			return val
		}
	}
	return Value{}
}

func refText(v Value) (string, bool) {
	major, _, arg, n, ok := abi.ReadHead(v.b)
	if !ok || major != abi.MajorText || arg > uint64(len(v.b)-n) {
		return "", false
	}
	return string(v.b[n : n+int(arg)]), true
}

func refEach(v Value) (keys []string, vals [][]byte) {
	n, b, ok := v.container(abi.MajorMap)
	if !ok {
		return
	}
	for i := uint64(0); i < n; i++ {
		var k, val Value
		if k, b, ok = refNext(b); !ok {
			return
		}
		if val, b, ok = refNext(b); !ok {
			return
		}
		keys, vals = append(keys, k.Str()), append(vals, val.b)
	}
	return
}

// randomValue builds a random value of the JSON data model, with long
// strings, big integers, floats and nesting so that every head width
// occurs.
func randomValue(r *rand.Rand, depth int) any {
	switch k := r.IntN(10); {
	case k == 0:
		return nil
	case k == 1:
		return r.IntN(2) == 0
	case k == 2:
		return []int64{0, 23, 24, 255, 256, 65535, 65536, 1 << 32, -1, -25, -1 << 40}[r.IntN(11)]
	case k == 3:
		return []float64{0.5, 1e300, -2.25, 65504}[r.IntN(4)]
	case k == 4:
		return strings.Repeat("x", []int{0, 1, 23, 24, 255, 256, 70000}[r.IntN(7)])
	case k < 7 && depth > 0:
		n := r.IntN(30)
		m := make(MapValue, 0, 2*n)
		for i := range n {
			m = append(m, "k"+strconv.Itoa(r.IntN(40))+strings.Repeat("y", i%3*20), randomValue(r, depth-1))
		}
		return m
	case depth > 0:
		l := make(ListValue, r.IntN(30))
		for i := range l {
			l[i] = randomValue(r, depth-1)
		}
		return l
	}
	return "s"
}

func TestFastReadersMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	for iter := range 1000 {
		b, err := AppendCBOR(nil, randomValue(r, 3))
		if err != nil {
			t.Fatal(err)
		}
		v := ValueOf(b)
		// Also truncated copies: malformed input gives Missing, not a panic.
		cut := ValueOf(b[:r.IntN(len(b)+1)])
		for _, x := range []Value{v, cut} {
			for k := range 45 {
				key := "k" + strconv.Itoa(k)
				got, want := x.Key(key), refKey(x, key)
				if !bytes.Equal(got.b, want.b) || got.Exists() != want.Exists() {
					t.Fatalf("iter %d: Key(%q) = %x, want %x (%d of %d bytes)", iter, key, got.b, want.b, len(x.b), len(b))
				}
				// Str of the value, and of its truncations.
				for _, y := range []Value{got, ValueOf(got.b[:r.IntN(len(got.b)+1)])} {
					s, ok := y.StrOK()
					ws, wok := refText(y)
					if s != ws || ok != wok || y.Str() != ws {
						t.Fatalf("iter %d: StrOK(%x) = %q %v, want %q %v", iter, y.b, s, ok, ws, wok)
					}
				}
			}
			var keys []string
			var vals [][]byte
			x.Each(func(k string, val Value) bool { keys, vals = append(keys, k), append(vals, val.b); return true })
			rk, rv := refEach(x)
			if strings.Join(keys, ",") != strings.Join(rk, ",") || len(vals) != len(rv) {
				t.Fatalf("iter %d: Each keys %q, want %q", iter, keys, rk)
			}
			if got, want := skipItem(x.b, 0), func() int {
				n, st := abi.SkipValue(x.b)
				if st != abi.StatusOK {
					return -1
				}
				return n
			}(); got != want {
				t.Fatalf("iter %d: skipItem = %d, SkipValue = %d (%d of %d bytes)", iter, got, want, len(x.b), len(b))
			}
		}
	}
}

func TestHandlerFor(t *testing.T) {
	if handlerFor([]byte("no/such/type")) != nil {
		t.Fatal("found a handler for an unregistered type")
	}
	n := len(consumed)
	// Types that share lengths, first and last 8 bytes, and differ only in
	// the middle or by a byte.
	var types []string
	for l := 1; l <= 40; l++ {
		types = append(types, strings.Repeat("a", l), strings.Repeat("a", l-1)+"b")
	}
	types = append(types,
		"todo/add", "todo/toggle", "todo/rename", "todo/delete", "todo/clear-completed",
		"12345678-x-87654321", "12345678-y-87654321", "é/ü", "\x00", "\x00\x00")
	for _, typ := range types {
		On("test:"+typ, func(*State, Event) error { return nil })
	}
	defer func() {
		consumed = consumed[:n]
		for _, typ := range types {
			delete(handlers, "test:"+typ)
		}
	}()
	for _, typ := range types {
		if e := handlerFor([]byte("test:" + typ)); e == nil || e.typ != "test:"+typ {
			t.Fatalf("handlerFor(%q) = %v", "test:"+typ, e)
		}
		for _, miss := range []string{"test:" + typ + "a", "test:" + typ[1:], "Test:" + typ, "test:" + typ[:len(typ)-1] + "c", typ} {
			if _, registered := handlers[miss]; registered {
				continue
			}
			if e := handlerFor([]byte(miss)); e != nil {
				t.Fatalf("handlerFor(%q) = %q", miss, e.typ)
			}
		}
	}
	if e := handlerFor([]byte("test:12345678-z-87654321")); e != nil {
		t.Fatalf("a type matching another's words only matched %q", e.typ)
	}
}

// TestHandlerForLookalikes registers types one at a time and looks up types
// that agree with them in the words of the lookup table (length, first and
// last bytes) but not in the bytes between: each must be a miss, for
// handlerFor and for the lookup nodbReduce makes in line.
func TestHandlerForLookalikes(t *testing.T) {
	h := NewHarness()
	for _, c := range []struct{ typ, miss string }{
		{"abc", "axc"},
		{"ab", "ac"},
		{"abcdefghijklmnopq", "abcdefghXjklmnopq"}, // byte 8 of 17 is in neither word
		{"12345678-x-87654321", "12345678-z-87654321"},
		{"abcdefghijklmnop", "abcdefghXjklmnop"},
		{"abcdefg", "abcXefg"},
		{"todo/toggle", "a"}, // "a", "b": a type of the same table slot, see sameSlot
		{"todo/toggle", "b"},
		{"0123456789abcdef", "a"},
		{"0123456789abcdef", "b"},
	} {
		ran := ""
		switch c.miss {
		case "a", "b":
			c.miss = sameSlot(t, c.typ, int(c.miss[0]-'a'))
		}
		On(c.typ, func(_ *State, e Event) error { ran = e.Type(); return nil })
		if e := handlerFor([]byte(c.typ)); e == nil || e.typ != c.typ {
			t.Errorf("handlerFor(%q) = %v", c.typ, e)
		}
		if e := handlerFor([]byte(c.miss)); e != nil {
			t.Errorf("handlerFor(%q) = %q", c.miss, e.typ)
		}
		for _, typ := range []string{c.miss, c.typ, c.miss} {
			ran = ""
			if err := h.Reduce(typ, "{}"); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]string{true: c.typ}[typ == c.typ]; ran != want {
				t.Errorf("an event of type %q ran the handler of %q", typ, ran)
			}
		}
		delete(handlers, c.typ)
		consumed = consumed[:len(consumed)-1]
	}
}

// sameSlot returns a type of typ's length (9 to 16 bytes) that lands in
// typ's table slot and differs from it only in bytes of word a (only == 0)
// or only in bytes of word b: only the comparison of that word tells them
// apart.
func sameSlot(t *testing.T, typ string, only int) string {
	n, a, b := typeKey([]byte(typ))
	want := typeSlot(n, a, b)
	lo, hi := 0, n-8 // bytes in word a only
	if only != 0 {
		lo, hi = 8, n // bytes in word b only
	}
	for i := 0; i < 1<<16; i++ {
		m := []byte(typ)
		m[lo] = byte(' ' + i%95)
		m[hi-1] = byte(' ' + i/95%95)
		if mn, ma, mb := typeKey(m); string(m) != typ && typeSlot(mn, ma, mb) == want {
			return string(m)
		}
	}
	t.Fatalf("no type in the slot of %q", typ)
	return ""
}
