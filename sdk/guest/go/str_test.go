//go:build !wasip1

package nodb

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/abi"
)

// randomKey returns a short key drawn from an alphabet heavy in the
// characters a path token escapes.
func randomKey(r *rand.Rand) string {
	const alpha = "abcdefgh~/é0"
	b := make([]byte, 0, 8)
	for range r.IntN(24) {
		if c := alpha[r.IntN(len(alpha))]; c < 0x80 {
			b = append(b, c)
		} else {
			b = append(b, "é"...)
		}
	}
	return string(b)
}

func TestEscapeAndPath(t *testing.T) {
	for _, c := range []struct {
		keys []string
		want string
	}{
		{nil, ""},
		{[]string{""}, "/"},
		{[]string{"todos"}, "/todos"},
		{[]string{"todos", "a/b~c", "done"}, "/todos/a~1b~0c/done"},
		{[]string{"~", "/", "~1"}, "/~0/~1/~01"},
		{[]string{"l", "-"}, "/l/-"},
	} {
		if got := Path(c.keys...); got != c.want {
			t.Errorf("Path(%q) = %q, want %q", c.keys, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		keys := make([]string, r.IntN(5))
		want := ""
		for i := range keys {
			keys[i] = randomKey(r)
			if got, w := Escape(keys[i]), abi.Escape(keys[i]); got != w {
				t.Fatalf("Escape(%q) = %q, want %q", keys[i], got, w)
			}
			want += "/" + abi.Escape(keys[i])
		}
		got := Path(keys...)
		if got != want {
			t.Fatalf("Path(%q) = %q, want %q", keys, got, want)
		}
		// The path splits back into the keys.
		split, st := abi.SplitPath(got)
		if st != abi.StatusOK || strings.Join(split, "\x00") != strings.Join(keys, "\x00") || len(split) != len(keys) {
			t.Fatalf("Path(%q) = %q splits into %q (%v)", keys, got, split, st)
		}
	}
}

// TestChunksNeverReuse checks the guest's string allocator: pieces never
// overlap, so strings made from them never change, across chunk
// boundaries, large pieces and collections.
func TestChunksNeverReuse(t *testing.T) {
	var c chunks
	r := rand.New(rand.NewPCG(5, 6))
	var strs []string
	var want [][]byte
	for i := range 5000 {
		n := r.IntN(64)
		if i%500 == 0 {
			n = maxChunked + r.IntN(100) // allocated on their own
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		strs = append(strs, c.str(b))
		want = append(want, b)
		if i%1000 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	for i, s := range strs {
		if !bytes.Equal([]byte(s), want[i]) {
			t.Fatalf("string %d changed: %x, want %x", i, s, want[i])
		}
	}
	if c.str(nil) != "" {
		t.Fatal("str(nil) is not empty")
	}
}

func TestStateView(t *testing.T) {
	h := NewHarness()
	var views []string
	On("test/view", func(s *State, e Event) error {
		views = views[:0]
		for _, p := range []string{"/a", "/b", "/a/x", "/nothing"} {
			v := s.View(p)
			views = append(views, v.String())
		}
		return s.Set("/b", !s.View("/b").Bool())
	})
	defer delete(handlers, "test/view")
	if err := h.Store.Set("/a", []byte{0xa1, 0x61, 'x', 0x02}); err != nil { // {"x":2}
		t.Fatal(err)
	}
	for i, want := range []string{
		`{"x":2} <missing> 2 <missing>`,
		`{"x":2} true 2 <missing>`,
		`{"x":2} false 2 <missing>`,
	} {
		if err := h.Reduce("test/view", "{}"); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(views, " "); got != want {
			t.Errorf("event %d: views %s, want %s", i, got, want)
		}
	}
}

// TestReduceMalformedFrames checks the in-line frame decoding against
// abi.DecodeFrame: a frame it refuses is rejected, not reduced.
func TestReduceMalformedFrames(t *testing.T) {
	h := NewHarness()
	ran := 0
	On("test/frame", func(s *State, e Event) error {
		ran++
		if e.Seq() != 7 || e.Time() != -5 || e.PSeq() != 9 || e.Producer() != "pr" || e.Type() != "test/frame" || e.Int("x") != 1 {
			t.Errorf("event %d %d %d %q %q %s", e.Seq(), e.Time(), e.PSeq(), e.Producer(), e.Type(), e.Payload())
		}
		return nil
	})
	defer delete(handlers, "test/frame")
	good, err := abi.AppendFrame(nil, 7, -5, 9, "pr", "test/frame", []byte(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"short":          good[:abi.FrameHeaderSize-1],
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"format":         func() []byte { b := append([]byte(nil), good...); b[abi.OffFormat] = 2; return b }(),
		"type length":    func() []byte { b := append([]byte(nil), good...); b[abi.OffTypeLen+3] = 0x80; return b }(),
	}
	current = h
	defer func() { current = nil }()
	for name, f := range bad {
		_, derr := abi.DecodeFrame(f)
		h.errMsg = ""
		if st := reduce(f); st != int32(abi.StatusError) || derr == nil || h.errMsg != "nodb: malformed event frame" {
			t.Errorf("%s: status %d, DecodeFrame error %v, message %q", name, st, derr, h.errMsg)
		}
	}
	if ran != 0 {
		t.Fatalf("a malformed frame reached the handler")
	}
	if st := reduce(good); st != 0 || ran != 1 {
		t.Fatalf("good frame: status %d, handler ran %d times", st, ran)
	}
}

// TestTypedSetters checks that SetStr, SetInt, SetFloat, SetBool and
// SetMap store what Set stores for the same value, and fail as it does.
func TestTypedSetters(t *testing.T) {
	h := NewHarness()
	long := strings.Repeat("x", 30)
	On("test/typed", func(s *State, e Event) error {
		steps := []struct {
			typed, set string
			do         func(p string) error
			v          any
		}{
			{"/t/s", "/u/s", func(p string) error { return s.SetStr(p, "héllo") }, "héllo"},
			{"/t/l", "/u/l", func(p string) error { return s.SetStr(p, long) }, long},
			{"/t/e", "/u/e", func(p string) error { return s.SetStr(p, "") }, ""},
			{"/t/i", "/u/i", func(p string) error { return s.SetInt(p, -1<<40) }, int64(-1 << 40)},
			{"/t/f", "/u/f", func(p string) error { return s.SetFloat(p, 1.5) }, 1.5},
			{"/t/b", "/u/b", func(p string) error { return s.SetBool(p, true) }, true},
			{"/t/m", "/u/m", func(p string) error { return s.SetMap(p, "text", "x", "done", false, "n", 3) }, Map("text", "x", "done", false, "n", 3)},
			{"/t/z", "/u/z", func(p string) error { return s.SetMap(p) }, Map()},
			{"/t/F", "/u/F", func(p string) error {
				return s.SetFields(p, StrField("text", "x"), BoolField("done", false), IntField("n", 3), FloatField("f", 1.5),
					BoolField("t", true), IntField("neg", -1<<40), StrField("long", long))
			}, Map("text", "x", "done", false, "n", 3, "f", 1.5, "t", true, "neg", -1<<40, "long", long)},
			{"/t/Z", "/u/Z", func(p string) error { return s.SetFields(p) }, Map()},
		}
		for _, st := range steps {
			if err := st.do(st.typed); err != nil {
				t.Errorf("%s: %v", st.typed, err)
			}
			if err := s.Set(st.set, st.v); err != nil {
				t.Errorf("%s: %v", st.set, err)
			}
			if got, want := s.View(st.typed).String(), s.View(st.set).String(); got != want {
				t.Errorf("%s = %s, Set gives %s", st.typed, got, want)
			}
		}
		if err := s.SetFloat("/t/nan", math.NaN()); !errors.Is(err, ErrUnsupported) {
			t.Errorf("SetFloat(NaN): %v", err)
		}
		if err := s.SetFields("/t/nanf", IntField("a", 1), FloatField("b", math.Inf(1))); !errors.Is(err, ErrUnsupported) {
			t.Errorf("SetFields with an infinity: %v", err)
		}
		if err := s.SetMap("/t/odd", "k"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("SetMap with a key and no value: %v", err)
		}
		var se *Error
		if err := s.SetStr("/t/s/x", "y"); !errors.As(err, &se) || se.Op != "set" || se.Path != "/t/s/x" || !errors.Is(err, abi.StatusTypeMismatch) {
			t.Errorf("SetStr through a string: %v", err)
		}
		if err := s.SetBool("/__proto__", true); !errors.Is(err, abi.StatusInvalidPath) {
			t.Errorf("SetBool at a forbidden key: %v", err)
		}
		return nil
	})
	defer delete(handlers, "test/typed")
	if err := h.Reduce("test/typed", "{}"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.JSON("/t"), h.JSON("/u"); got != want || !strings.Contains(got, `"m":{"n":3,"done":false,"text":"x"}`) {
		t.Errorf("typed setters gave %s, Set gave %s", got, want)
	}
}

// TestNeedsEscape checks the word-at-a-time test against a byte loop for
// every length up to 40 and every position of '~' and '/', among bytes
// that differ from them by one bit or one step.
func TestNeedsEscape(t *testing.T) {
	fill := []byte{'a', '~' - 1, '~' + 1, '/' - 1, '/' + 1, 0x00, 0xff, 0x80, 0x7f, '~' ^ 0x40, '/' ^ 0x80}
	for n := 0; n <= 40; n++ {
		for _, f := range fill {
			b := bytes.Repeat([]byte{f}, n)
			if got := needsEscape(string(b)); got {
				t.Fatalf("needsEscape(%q) = true", b)
			}
			for i := range n {
				for _, c := range []byte{'~', '/'} {
					b2 := append([]byte(nil), b...)
					b2[i] = c
					if !needsEscape(string(b2)) {
						t.Fatalf("needsEscape(%q) = false", b2)
					}
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(8, 9))
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := needsEscape(string(b)), strings.ContainsAny(string(b), "~/"); got != want {
			t.Fatalf("needsEscape(%q) = %v", b, got)
		}
	}
}

// TestEqualShort checks equalShort for every length up to 40 and a
// difference at every position.
func TestEqualShort(t *testing.T) {
	for n := 0; n <= 40; n++ {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i*7 + 1)
		}
		if !equalShort(src, string(src)) {
			t.Fatalf("equalShort(%x, itself) = false", src)
		}
		if n > 0 && equalShort(src[:n-1], string(src)) || equalShort(src, string(src)+"x") {
			t.Fatalf("equalShort of different lengths (%d) = true", n)
		}
		for i := range n {
			other := append([]byte(nil), src...)
			other[i] ^= 0x40
			if equalShort(src, string(other)) || equalShort(other, string(src)) {
				t.Fatalf("equalShort(%x, %x) = true", src, other)
			}
		}
	}
}

// TestFieldsEncodeLikeMap checks SetFields' encoding byte for byte against
// Map's, whose order it keeps (the host's canonical form would hide order),
// for maps of up to 30 fields (a head of two bytes from 24 on).
func TestFieldsEncodeLikeMap(t *testing.T) {
	var fields []Field
	var kv []any
	for i := range 30 {
		k := "k" + strconv.Itoa(i)
		switch i % 4 {
		case 0:
			fields, kv = append(fields, StrField(k, strings.Repeat("s", i))), append(kv, k, strings.Repeat("s", i))
		case 1:
			fields, kv = append(fields, BoolField(k, i%8 == 1)), append(kv, k, i%8 == 1)
		case 2:
			fields, kv = append(fields, IntField(k, int64(i)<<(i%60)-1)), append(kv, k, int64(i)<<(i%60)-1)
		default:
			fields, kv = append(fields, FloatField(k, float64(i)/3)), append(kv, k, float64(i)/3)
		}
		got, err := appendFields(nil, fields)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Map(kv...).AppendCBOR(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d fields: %x, Map gives %x", len(fields), got, want)
		}
	}
}
