package abi_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/nodb-dev/nodb/abi"
)

func TestVectorsEvents(t *testing.T) {
	v := loadVectors(t)
	for _, e := range v.Events {
		got, err := abi.AppendFrame([]byte("prefix"), mustU(t, e.Seq), mustI(t, e.Time), mustU(t, e.PSeq), e.Producer, e.Type, []byte(e.Payload))
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		if h := hex.EncodeToString(got[6:]); h != e.Frame {
			t.Errorf("%s: frame\n got %s\nwant %s", e.Name, h, e.Frame)
		}
		f, err := abi.DecodeFrame(unhex(t, e.Frame))
		if err != nil {
			t.Fatalf("%s: decode: %v", e.Name, err)
		}
		if f.Seq != mustU(t, e.Seq) || f.Time != mustI(t, e.Time) || f.PSeq != mustU(t, e.PSeq) ||
			string(f.Producer) != e.Producer || string(f.Type) != e.Type {
			t.Errorf("%s: decoded %+v", e.Name, f)
		}
		if st := abi.ValidateValue(f.Payload); st != abi.StatusOK {
			t.Errorf("%s: payload invalid: %v", e.Name, st)
		}
	}
	if _, err := abi.DecodeFrame(make([]byte, 39)); err == nil {
		t.Error("short frame accepted")
	}
}

// TestVectorsValues checks the host-side JSON->CBOR encoder against the
// vectors, and the vectors themselves against two independent decoders
// (encoding/json and fxamacker/cbor).
func TestVectorsValues(t *testing.T) {
	v := loadVectors(t)
	for _, x := range v.Values {
		got, err := abi.AppendJSONAsCBOR(nil, []byte(x.JSON))
		if err != nil {
			t.Fatalf("%s: %v", x.Name, err)
		}
		want := unhex(t, x.CBOR)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %x want %x", x.Name, got, want)
		}
		if st := abi.ValidateValue(want); st != abi.StatusOK {
			t.Errorf("%s: ValidateValue = %v", x.Name, st)
		}
		var fromJSON, fromCBOR any
		if err := json.Unmarshal([]byte(x.JSON), &fromJSON); err != nil {
			t.Fatal(err)
		}
		if err := cbor.Unmarshal(want, &fromCBOR); err != nil {
			t.Fatalf("%s: fxamacker: %v", x.Name, err)
		}
		if !sameValue(fromJSON, fromCBOR) {
			t.Errorf("%s: json %#v vs cbor %#v", x.Name, fromJSON, fromCBOR)
		}
		// Round trip through JSON text.
		js, rest, err := abi.AppendCBORAsJSON(nil, want)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%s: to JSON: %v", x.Name, err)
		}
		var back any
		if err := json.Unmarshal(js, &back); err != nil || !sameValue(fromJSON, back) {
			t.Errorf("%s: round trip %s", x.Name, js)
		}
	}
	for _, s := range v.InvalidJSON {
		if b, err := abi.AppendJSONAsCBOR(nil, []byte(s)); err == nil {
			t.Errorf("invalid JSON %q accepted as %x", s, b)
		}
	}
	for _, x := range v.InvalidValues {
		if st := abi.ValidateValue(unhex(t, x.CBOR)); st == abi.StatusOK {
			t.Errorf("%s: invalid value accepted", x.Name)
		}
	}
	for _, x := range v.AcceptedValues {
		b := unhex(t, x.CBOR)
		if st := abi.ValidateValue(b); st != abi.StatusOK {
			t.Errorf("%s: rejected: %v", x.Name, st)
		}
		js, _, err := abi.AppendCBORAsJSON(nil, b)
		if err != nil || string(js) != x.JSON {
			t.Errorf("%s: JSON %s, %v", x.Name, js, err)
		}
	}
}

// sameValue compares a JSON-decoded value with a CBOR-decoded one, numbers
// by value.
func sameValue(a, b any) bool {
	num := func(x any) (float64, bool) {
		switch n := x.(type) {
		case float64:
			return n, true
		case uint64:
			return float64(n), true
		case int64:
			return float64(n), true
		}
		return 0, false
	}
	if fa, ok := num(a); ok {
		fb, ok := num(b)
		return ok && (fa == fb || math.Abs(fa-fb) <= math.Abs(fa)*1e-15)
	}
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[any]any)
		if !ok {
			y2, ok2 := b.(map[string]any)
			if !ok2 {
				return false
			}
			y = map[any]any{}
			for k, v := range y2 {
				y[k] = v
			}
		}
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !sameValue(v, y[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestVectorsPaths(t *testing.T) {
	v := loadVectors(t)
	for _, p := range v.Paths {
		keys, st := abi.SplitPath(p.Path)
		if st != abi.StatusOK {
			t.Fatalf("%q: %v", p.Path, st)
		}
		if len(keys) != len(p.Keys) || (len(keys) > 0 && !reflect.DeepEqual(keys, p.Keys)) {
			t.Errorf("%q: keys %q want %q", p.Path, keys, p.Keys)
		}
		var b []byte
		for _, k := range p.Keys {
			b = append(append(b, '/'), abi.Escape(k)...)
		}
		if string(b) != p.Path {
			t.Errorf("escape %q: got %q", p.Keys, b)
		}
	}
	for _, p := range v.InvalidPaths {
		if st := abi.ValidatePath(p); st == abi.StatusOK {
			t.Errorf("invalid path %q accepted", p)
		}
	}
	for _, e := range v.Epochs {
		if got := abi.Epoch(mustU(t, e[0])); got != mustU(t, e[1]) {
			t.Errorf("Epoch(%s) = %d want %s", e[0], got, e[1])
		}
	}
}

// TestValidatePathRejectsInvalidUTF8: paths are UTF-8 (ABI.md, section
// 6.2); the host's state refuses others with StatusInvalidPath, and so
// must ValidatePath, which the SDKs' native harnesses check paths with.
func TestValidatePathRejectsInvalidUTF8(t *testing.T) {
	for _, p := range []string{"/a\xff", "/\xc3", "/ok/\xed\xa0\x80", "/a/b\xc0\xaf"} {
		if st := abi.ValidatePath(p); st != abi.StatusInvalidPath {
			t.Errorf("ValidatePath(%q) = %v, want StatusInvalidPath", p, st)
		}
		if _, st := abi.SplitPath(p); st != abi.StatusInvalidPath {
			t.Errorf("SplitPath(%q) = %v, want StatusInvalidPath", p, st)
		}
	}
	if st := abi.ValidatePath("/\u00e9t\u00e9/\U0001F600"); st != abi.StatusOK {
		t.Errorf("valid UTF-8 path: %v", st)
	}
}

func TestStatusError(t *testing.T) {
	for _, s := range []abi.Status{0, 1, -1, -2, -3, -4, -5, -6, -7, -99} {
		if s.Error() == "" {
			t.Errorf("%d: empty message", s)
		}
	}
	if abi.Status(-99).Error() != "abi: status -99" {
		t.Error(abi.Status(-99).Error())
	}
}

func FuzzJSONToCBOR(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",null,true]}`, `"\ud800"`, `[[[[]]]]`, `-0`, `1E+2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		b, err := abi.AppendJSONAsCBOR(nil, js)
		valid := json.Valid(js)
		if err != nil {
			var x any
			if valid && json.Unmarshal(js, &x) == nil && bytes.Count(js, []byte("[")) < abi.MaxDepth && bytes.Count(js, []byte("{")) < abi.MaxDepth {
				t.Fatalf("valid JSON %q rejected: %v", js, err)
			}
			return
		}
		if !valid {
			t.Fatalf("invalid JSON %q accepted", js)
		}
		if st := abi.ValidateValue(b); st != abi.StatusOK {
			t.Fatalf("%q -> %x invalid: %v", js, b, st)
		}
	})
}

// FuzzJSONObject holds the in-line conversion of object members (keys,
// plain strings, literals, small integers) to the general path: the same
// bytes, the same errors.
func FuzzJSONObject(f *testing.F) {
	for _, s := range []string{`{"id":"abcd1234"}`, `{"id":"t1","text":"buy milk","done":false,"n":-12,"z":null,"t":true}`,
		`{ "a" : 1 , "b":[1,{"c":"d"}], "e":{"f":1.5e3} }`, `{"a":-0}`, `{"a":01}`, `{"a":123456789012345678}`,
		`{"a":1234567890123456789}`, `{"a":-9223372036854775808}`, `{"a":1.}`, `{"a":tru}`, `{"a":"\u00e9"}`, `{"é":"ü"}`,
		`{"a":1,}`, `{,}`, `{"a" 1}`, `{}`, `{"a":{"b":{"c":{}}}}`, `{"a":"x"}}`, `{"a":-}`, `{"a":nul}`} {
		f.Add([]byte(s))
	}
	for _, d := range []int{abi.MaxDepth - 1, abi.MaxDepth, abi.MaxDepth + 1} {
		for _, leaf := range []string{`1`, `"x"`, `[]`, `{}`, `true`} {
			f.Add([]byte(strings.Repeat(`{"a":`, d) + leaf + strings.Repeat(`}`, d)))
		}
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		got, err := abi.AppendJSONAsCBOR([]byte{0xaa}, js)
		want, wantErr := abi.AppendJSONAsCBORGeneric([]byte{0xaa}, js)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("%q: %x, %v; generic %x, %v", js, got, err, want, wantErr)
		}
	})
}

// FuzzJSONString holds the conversion of JSON strings (the fast scan for
// plain ASCII and valid UTF-8, the slow path for escapes and invalid UTF-8)
// to encoding/json's reading of the same text: the same strings accepted,
// the same text decoded, invalid UTF-8 replaced the same way.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "abc", "héllo wörld, a string over 24 bytes", "\xff", "a\xc3", "\xed\xa0\x80", `\"`, `\u00e9\n`, `\ud83d\ude00`, "\x01", "tab\there", `\`, "日本語のテキスト"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		js := append(append([]byte{'"'}, body...), '"')
		var want string
		wantErr := json.Unmarshal(js, &want)
		got, err := abi.AppendJSONAsCBOR(nil, js)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, encoding/json %v", js, err, wantErr)
		}
		if err != nil {
			return
		}
		if st := abi.ValidateValue(got); st != abi.StatusOK {
			t.Fatalf("%q -> %x invalid: %v", js, got, st)
		}
		var s string
		if err := cbor.Unmarshal(got, &s); err != nil || s != want {
			t.Fatalf("%q -> %x = %q (%v), encoding/json %q", js, got, s, err, want)
		}
		if want == string(body) && !bytes.Equal(got[len(got)-len(body):], body) {
			t.Fatalf("%q: text not copied as is: %x", js, got)
		}
	})
}

// BenchmarkAppendFrame is the host's per-event frame building for a todo
// event: the JSON payload converted to CBOR.
func BenchmarkAppendFrame(b *testing.B) {
	payloads := [][]byte{
		[]byte(`{"id":"t123","text":"buy milk and eggs"}`),
		[]byte(`{"id":"t123"}`),
		[]byte(`{"id":"t123","text":"acheter du pain complet, s'il vous plaît"}`),
	}
	var buf []byte
	b.ReportAllocs()
	for k := 0; b.Loop(); k++ {
		var err error
		if buf, err = abi.AppendFrame(buf[:0], uint64(k+1), int64(k), uint64(k), "bench", "todo/add", payloads[k%len(payloads)]); err != nil {
			b.Fatal(err)
		}
	}
}
