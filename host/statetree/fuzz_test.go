package statetree

import (
	"bytes"
	"encoding/json"
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

// FuzzApplyPatch feeds RFC 6902 ops as a remote upstream sends them (a
// cascade's mirror applies them, host/cascade) to a small tree: decoding and
// applying never panic, a failed apply leaves the old value untouched, and a
// successful one gives a value that diffs back to the same state. Seed
// corpus: testdata/fuzz/FuzzApplyPatch.
func FuzzApplyPatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"add","path":"/todos/b","value":{"done":true,"text":"x"}}]`,
		`[{"op":"replace","path":"/todos/a/done","value":true},{"op":"remove","path":"/n/0"}]`,
		`[{"op":"add","path":"/n/-","value":3},{"op":"replace","path":"","value":{}}]`,
		`[{"op":"remove","path":"/missing"}]`, `[{"op":"move","from":"/n","path":"/m"}]`,
		`[{"op":"add","path":"/__proto__/x","value":1}]`, `[{"op":"add","path":"/n/7","value":1}]`,
	} {
		f.Add([]byte(s))
	}
	base, err := FromJSON([]byte(`{"todos":{"a":{"done":false,"text":"milk"}},"n":[1,2]}`))
	if err != nil {
		f.Fatal(err)
	}
	before := base.Hash()
	f.Fuzz(func(t *testing.T, data []byte) {
		var ops []Op
		if err := json.Unmarshal(data, &ops); err != nil {
			return
		}
		got, err := Apply(base, ops)
		if base.Hash() != before {
			t.Fatal("Apply changed its input")
		}
		if err != nil {
			return
		}
		if back, err := Apply(base, Diff(base, got)); err != nil || !Equal(back, got) {
			t.Fatalf("Diff of the patched value does not reproduce it: %v", err)
		}
	})
}
