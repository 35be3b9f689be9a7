package statetree

import (
	"bytes"
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"pgregory.net/rapid"
)

// TestCBORMatchesFxamacker checks that EncodeCBOR is byte-identical to
// fxamacker/cbor's Core Deterministic encoding of the same data, and that
// each decodes the other's output.
func TestCBORMatchesFxamacker(t *testing.T) {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	dm, err := cbor.DecOptions{DefaultMapType: mapStringAny, IntDec: cbor.IntDecConvertSigned}.DecMode()
	if err != nil {
		t.Fatal(err)
	}
	rapid.Check(t, func(t *rapid.T) {
		v := genValue(3).Draw(t, "v")
		ours := EncodeCBOR(v)
		theirs, err := em.Marshal(v.ToGo())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("%s:\nours   %x\ntheirs %x", v, ours, theirs)
		}
		var back any
		if err := dm.Unmarshal(ours, &back); err != nil {
			t.Fatalf("fxamacker cannot decode %x: %v", ours, err)
		}
		if g, err := FromGo(back); err != nil || !Equal(g, v) {
			t.Fatalf("fxamacker decoded %s as %s (%v)", v, g, err)
		}
	})
}

var mapStringAny = reflect.TypeFor[map[string]any]()

func TestCBORFloats(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, "f90000"},
		{1, "f93c00"},
		{-2, "f9c000"},
		{65504, "f97bff"},
		{5.960464477539063e-08, "f90001"}, // smallest half subnormal
		{6.103515625e-05, "f90400"},       // smallest half normal
		{65505, "fa477fe100"},
		{0.1, "fb3fb999999999999a"},
		{1e300, "fb7e37e43c8800759c"},
		{3.4028234663852886e+38, "fa7f7fffff"},
	} {
		got := hex.EncodeToString(EncodeCBOR(Float(tc.f)))
		if got != tc.want {
			t.Errorf("EncodeCBOR(%g) = %s, want %s", tc.f, got, tc.want)
		}
		v, err := DecodeCBOR(EncodeCBOR(Float(tc.f)))
		if err != nil || v.Kind() != KindFloat || v.Float() != tc.f {
			t.Errorf("DecodeCBOR(%s) = %s, %v", got, v, err)
		}
	}
	for h := range 1 << 16 { // every finite half decodes and re-encodes to itself
		f := fromHalf(uint16(h))
		if math.IsNaN(f) || math.IsInf(f, 0) || f == 0 {
			continue
		}
		if back, ok := toHalf(f); !ok || back != uint16(h) {
			t.Fatalf("half %#04x → %g → %#04x, %v", h, f, back, ok)
		}
	}
	if got := hex.EncodeToString(EncodeCBOR(Int(-1 << 63))); got != "3b7fffffffffffffff" {
		t.Errorf("MinInt64 = %s", got)
	}
}

func TestCBORHostile(t *testing.T) {
	deep := strings.Repeat("81", MaxDepth+1) + "00"
	for _, tc := range []struct{ in, want string }{
		{"", "unexpected end"},
		{"9f01ff", "indefinite-length"},
		{"7f6161ff", "indefinite-length"},
		{"9bffffffffffffffff", "exceeds the input"},
		{"bbffffffffffffffff", "exceeds the input"},
		{"7bffffffffffffffff", "exceeds the input"},
		{"9a000f4240", "exceeds the input"},
		{"4161", "byte string"},
		{"c001", "tag"},
		{"f7", "simple value 23"},
		{"f820", "simple value 24"},
		{"f97e00", "not finite"},
		{"f97c00", "not finite"},
		{"fa7fc00000", "not finite"},
		{"1bffffffffffffffff", "does not fit"},
		{"3b8000000000000000", "does not fit"},
		{"a2616101616101", "duplicate map key"},
		{"a10101", "expected a text string"},
		{"a1695f5f70726f746f5f5f01", `key "__proto__" is not allowed`},
		{"a1a16b636f6e7374727563746f7201", "expected a text string"},
		{"a16161a16b636f6e7374727563746f7201", `key "constructor" is not allowed`},
		{"61ff", "not valid UTF-8"},
		{"a162c3ff01", "not valid UTF-8"},                                 // a short key (the decoder's fast path)
		{"a17818" + strings.Repeat("61", 23) + "ff01", "not valid UTF-8"}, // a 24-byte key
		{"a1781a" + strings.Repeat("61", 25) + "c001", "not valid UTF-8"}, // an overlong encoding in a long key
		{"0000", "after the value"},
		{"1c", "reserved"},
		{"18", "unexpected end"},
		{"82", "exceeds the input"},
		{deep, "nesting deeper than 512"},
	} {
		b, err := hex.DecodeString(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		_, err = DecodeCBOR(b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "statetree: ") {
			t.Errorf("DecodeCBOR(%.40s) error = %v, want %q", tc.in, err, tc.want)
		}
	}
	// Accepted although not deterministic: keys out of order, long-form
	// arguments, half/single floats for values that need no more.
	for _, tc := range []struct{ in, want string }{
		{"a2616201616100", `{"a":0,"b":1}`},
		{"1800", `0`},
		{"780161", `"a"`},
		{"fa3f800000", `1.0`},
		{"fb3ff0000000000000", `1.0`},
		{"f98000", `0.0`},
	} {
		b, _ := hex.DecodeString(tc.in)
		v, err := DecodeCBOR(b)
		if err != nil || v.String() != tc.want {
			t.Errorf("DecodeCBOR(%s) = %s, %v; want %s", tc.in, v, err, tc.want)
		}
	}
}

func TestCBORSnapshot100k(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	root := todos(100_000)
	data := EncodeCBOR(root)
	back, err := DecodeCBOR(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash() != root.Hash() {
		t.Fatal("100k snapshot does not round-trip")
	}
}
