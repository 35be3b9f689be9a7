package statetree

import (
	"bytes"
	"testing"
)

// FuzzFromJSON checks that the JSON parser never panics, and that whatever
// it accepts re-encodes canonically and round-trips through JSON and CBOR.
// Seed corpus: testdata/fuzz/FuzzFromJSON.
func FuzzFromJSON(f *testing.F) {
	for _, s := range []string{
		`{"todos":{"a1":{"done":false,"title":"milk"}},"n":[1,1.0,-0,1e21,1e-7]}`,
		`"\ud83d\ude00\u0000\n"`, `[[[[]]]]`, `{"":{"":null}}`, `9223372036854775808`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := FromJSON(data)
		if err != nil {
			return
		}
		j := v.AppendJSON(nil)
		w, err := FromJSON(j)
		if err != nil {
			t.Fatalf("canonical JSON %s does not parse: %v", j, err)
		}
		if !Equal(v, w) || !bytes.Equal(w.AppendJSON(nil), j) || v.Hash() != w.Hash() {
			t.Fatalf("JSON round trip changed %s into %s", j, w)
		}
		c := EncodeCBOR(v)
		x, err := DecodeCBOR(c)
		if err != nil || !Equal(v, x) {
			t.Fatalf("CBOR round trip of %s: %s, %v", j, x, err)
		}
		if ops := Diff(EmptyMap(), v); len(ops) > 0 {
			if got, err := Apply(EmptyMap(), ops); err != nil || !Equal(got, v) {
				t.Fatalf("Apply(Diff({}, %s)) = %s, %v", j, got, err)
			}
		}
	})
}

// FuzzDecodeCBOR checks that the CBOR decoder never panics or over-allocates
// on hostile input, and that whatever it accepts re-encodes to a canonical
// form that decodes to the same value. Seed corpus:
// testdata/fuzz/FuzzDecodeCBOR.
func FuzzDecodeCBOR(f *testing.F) {
	for _, s := range []string{
		`{"todos":{"a1":{"done":false,"title":"milk"}},"n":[1,1.0,-1,1e21,0.1,65504]}`,
		`[null,true,false,"",{},[]]`,
	} {
		v, err := FromJSON([]byte(s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(EncodeCBOR(v))
	}
	f.Add([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeCBOR(data)
		if err != nil {
			return
		}
		c := EncodeCBOR(v)
		w, err := DecodeCBOR(c)
		if err != nil || !Equal(v, w) || !bytes.Equal(EncodeCBOR(w), c) {
			t.Fatalf("CBOR re-encoding of %x: %x → %s, %v", data, c, w, err)
		}
		if _, err := FromJSON(v.AppendJSON(nil)); err != nil {
			t.Fatalf("JSON of %x does not parse: %v", data, err)
		}
	})
}
