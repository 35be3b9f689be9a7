package statetree

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// goldenValues builds values that cover every branch of the hash encoding:
// each scalar kind, strings on both sides of the inline limit, arrays and
// trie nodes whose encodings are small, medium and larger than any buffer
// the hasher keeps on its stack, long prefixes, entries at inner nodes,
// deep nesting and a todo app's state.
func goldenValues(t testing.TB) []struct {
	name string
	v    Value
} {
	var out []struct {
		name string
		v    Value
	}
	add := func(name string, v Value) {
		out = append(out, struct {
			name string
			v    Value
		}{name, v})
	}
	add("null", Null())
	add("false", Bool(false))
	add("true", Bool(true))
	add("int", Int(-1))
	add("float", Float(1.5))
	add("empty string", String(""))
	add("string 55", String(strings.Repeat("s", 55)))
	add("string 56", String(strings.Repeat("s", 56)))
	add("string 5000", String(strings.Repeat("é", 2500)))
	add("empty array", Array())
	add("empty map", EmptyMap())
	add("small array", Array(Int(1), String("x"), Bool(true), Null(), Float(-2.25), Array(), EmptyMap()))
	var ints, maps, longs []Value
	for i := range 300 {
		ints = append(ints, Int(int64(i)))
		m, _ := Map(map[string]Value{"i": Int(int64(i))})
		maps = append(maps, m)
		longs = append(longs, String(strings.Repeat("l", 50+i)))
	}
	add("array 300 ints", Array(ints...))
	add("array 300 maps", Array(maps...))
	add("array 300 strings", Array(longs...))
	wide := map[string]Value{}
	for c := range 256 {
		wide[string(rune(c))] = Int(int64(c))
	}
	add("map 256 one-char keys", must(Map(wide)))
	wide2 := map[string]Value{"k": Int(0)}
	for c := range 128 {
		wide2["k"+string(rune(c))+"-tail"] = String(strings.Repeat("v", c))
	}
	for r := rune(0x80); r < 0x800; r += 64 {
		wide2["k"+string(r)] = mustJSON(t, `{"k":1}`)
	}
	add("map wide inner entry", must(Map(wide2)))
	prefixes := map[string]Value{}
	for i := range 20 {
		prefixes[strings.Repeat("a", i)] = Int(int64(i))
	}
	add("map prefix chain", must(Map(prefixes)))
	longKey := strings.Repeat("k", 3000)
	add("map long keys", must(Map(map[string]Value{longKey + "1": Int(1), longKey + "2": String(strings.Repeat("v", 100)), longKey: Array(Int(1))})))
	deep := Int(7)
	for i := range 400 {
		if i%2 == 0 {
			deep = must(Map(map[string]Value{"d": deep, "s": String("x")}))
		} else {
			deep = Array(deep, Null())
		}
	}
	add("deep", deep)
	add("mixed", mustJSON(t, `{"todos":{"a1":{"done":false,"title":"milk","n":1,"f":1.5},"a2":null},"list":[1,"x",true,[]],"long":"`+strings.Repeat("x", 100)+`","":{},"é":{"":1,"a":{"b":{"c":[{"d":"e"}]}}}}`))
	add("todos 1000", todos(1000))
	for _, n := range []int{0, 10, 999} {
		v := todos(1000)
		v.Hash() // cached hashes on the untouched nodes
		v, _, _ = v.Set(MustPath(fmt.Sprintf("/todos/todo-%06d/done", n)), Bool(true))
		add(fmt.Sprintf("todos 1000 after set %d", n), v)
	}
	return out
}

func must(v Value, err error) Value {
	if err != nil {
		panic(err)
	}
	return v
}

// goldenHashes are the hashes of goldenValues, computed before the hashing
// code was optimised. They must never change.
var goldenHashes = map[string]string{
	"null":                     "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"false":                    "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a",
	"true":                     "dbc1b4c900ffe48d575b5da5c638040125f65db0fe3e24494b76ea986457d986",
	"int":                      "339eed010a5e07b4314cb00f1234d636dc30df8fce73917165c299c6b4811804",
	"float":                    "a39f5f7616203e78dbc030cf0b3c757dbafe91dca679b94ddbb4a4ef9fda84b9",
	"empty string":             "6c449f91c1adbf3945ad078f5f875c0c1f133f246c4588668faffbe23a3c195f",
	"string 55":                "91a5b3f2dce725aa2196b6fb9176805c01800417a0d1f49181a84b3c65e15904",
	"string 56":                "c00a3c9c910ddb2875cc3832abb2c50838619e475230a3b5fefdd8498dfae1c9",
	"string 5000":              "113343a74facc313442bd16de384d3e071114a4801c2febbf2124c364794dc73",
	"empty array":              "69c29c051218dbea38795b1cdfd816855c312a9cbc0b1daaa79bb9a0b895361a",
	"empty map":                "7e2e8b49f93a4f1fcd3d8c53db08bcd2fb714f1d91d4db7ed0b8786c572f9164",
	"small array":              "a405d12100f64c68aeae61efcb75e4d7b23d66e639b2e801f54745e4a31b0756",
	"array 300 ints":           "16c18b9078da66e4f48df7d787bdb7868ba137cef3894d1a2435645456c31b9d",
	"array 300 maps":           "2773bf2998216c4f8779af4e713678bd5098598b8ffadbe1c25de250fb319de8",
	"array 300 strings":        "846a29e43de1638faaf7e07aa79f0073a7fe50cfadc88c2ff23cb059c0b364a3",
	"map 256 one-char keys":    "03c51b6ef978a73bffb71022213912a200117139fa03e61fe50dbbdba8df411e",
	"map wide inner entry":     "3274fd4eea95697aa1f75a392eb40e69ddb1bf5590a73f0171c703bcd0197eae",
	"map prefix chain":         "069f96e69fdbd6f4d0525a142a56795853c89e12469d568aa30028bf5b62a3ed",
	"map long keys":            "d80182a2a279a721e611588a0485fdf188b6205320476602377af839be7a7855",
	"deep":                     "9af86bd2d515a414a89e011660c6a2ec8ff68760c598d8064c52f5cd05d54a18",
	"mixed":                    "8a33193e92c62d5f0feb363e15c36d1f817c0b3a4cda74ccaebac551a4ae0682",
	"todos 1000":               "1e57032376f4394b4b77ef99a302c8a0bb80ed367527e377941de0655a2662b5",
	"todos 1000 after set 0":   "95fae199e7f2482063801a8117f4e620f25c6ec6ad3dd59a790155a83cae4dfd",
	"todos 1000 after set 10":  "70b94f8a2ab1b01ab90c7b4c198d9a6f65245a2992de23be1fcc2b089ce4a267",
	"todos 1000 after set 999": "7a99c267e42a50ea8c0b2ad97ddd1c11a14665695ad783421eb380c0cfbe1517",
}

// TestHashGoldenValues pins the hashes of goldenValues, computed fresh, again
// from the cache, and by concurrent hashers, and checks that each equals the
// hash of the value rebuilt from its JSON.
func TestHashGoldenValues(t *testing.T) {
	for _, g := range goldenValues(t) {
		var wg sync.WaitGroup
		hs := make([]Hash, 3)
		for i := range hs {
			wg.Go(func() { hs[i] = g.v.Hash() })
		}
		wg.Wait()
		h := g.v.Hash()
		for i := range hs {
			if hs[i] != h {
				t.Errorf("%s: concurrent hash %s, cached %s", g.name, hs[i], h)
			}
		}
		if want := goldenHashes[g.name]; h.String() != want {
			t.Errorf("%s: hash %s, want %s", g.name, h, want)
		}
		if fresh := mustJSON(t, g.v.String()); fresh.Hash() != h {
			t.Errorf("%s: hash %s, rebuilt from JSON %s", g.name, h, fresh.Hash())
		}
	}
}
