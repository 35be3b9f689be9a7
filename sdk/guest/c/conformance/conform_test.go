package conformance_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/abi/abitest"
	"github.com/nodb-dev/nodb/plugins"
	"github.com/nodb-dev/nodb/sdk/guest/c/conformance"
)

func loadVectors(t *testing.T) *abitest.Vectors { return abitest.Load(t) }

// recState is a plugins.State that keeps what the guest sets, by exact
// path.
type recState map[string][]byte

// Get implements plugins.State.
func (s recState) Get(path string) ([]byte, bool, error) {
	v, ok := s[path]
	return v, ok, nil
}

// Has implements plugins.State.
func (s recState) Has(path string) (bool, error) {
	_, ok := s[path]
	return ok, nil
}

// Set implements plugins.State.
func (s recState) Set(path string, v []byte) error {
	s[path] = append([]byte(nil), v...)
	return nil
}

// Delete implements plugins.State.
func (s recState) Delete(path string) error {
	if _, ok := s[path]; !ok {
		return abi.StatusNotFound
	}
	delete(s, path)
	return nil
}

// guest is the conformance module (testdata/conform.c) in the real host.
type guest struct {
	t    testing.TB
	inst *plugins.Instance
	mod  *plugins.Module
	seq  uint64
}

func newGuest(t testing.TB) *guest {
	ctx := context.Background()
	wasm, err := os.ReadFile("testdata/conform.wasm")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := plugins.NewRuntime(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := mod.NewInstance(ctx, plugins.InstanceConfig{View: "conform"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(ctx) })
	return &guest{t: t, inst: inst, mod: mod}
}

// reduce sends one event and returns the state it wrote and the rejection
// message ("" if accepted). Other errors fail the test.
func (g *guest) reduce(typ, payload string) (recState, string) {
	g.t.Helper()
	g.seq++
	st := recState{}
	err := g.inst.Reduce(context.Background(), &plugins.Event{Seq: g.seq, Time: 1, Producer: "p", PSeq: g.seq, Type: typ, Payload: []byte(payload)}, st)
	var re *plugins.ReducerError
	if errors.As(err, &re) {
		return st, re.Message
	}
	if err != nil {
		g.t.Fatalf("%s %s: %v", typ, payload, err)
	}
	return st, ""
}

func hexPayload(h string) string { return `{"hex":"` + h + `"}` }

func cborOf(t *testing.T, js string) []byte {
	t.Helper()
	if strings.TrimSpace(js) == "" {
		return []byte{abi.CBORNull} // an empty payload is null (ABI.md 5.1)
	}
	b, err := abi.AppendJSONAsCBOR(nil, []byte(js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return b
}

func textCBOR(s string) string { return hex.EncodeToString(abi.AppendString(nil, s)) }

// TestFrames decodes the vectors' frames with nodb_decode_frame.
func TestFrames(t *testing.T) {
	g := newGuest(t)
	for _, ev := range loadVectors(t).Events {
		st, rej := g.reduce("c/frame", hexPayload(ev.Frame))
		if rej != "" {
			t.Fatalf("%s: rejected: %s", ev.Name, rej)
		}
		for path, want := range map[string]string{
			"/seq": textCBOR(ev.Seq), "/time": textCBOR(ev.Time), "/pseq": textCBOR(ev.PSeq),
			"/producer": textCBOR(ev.Producer), "/type": textCBOR(ev.Type),
			"/payload": hex.EncodeToString(cborOf(t, ev.Payload)),
		} {
			if got := hex.EncodeToString(st[path]); got != want {
				t.Errorf("%s: %s = %s, want %s", ev.Name, path, got, want)
			}
		}
	}
	// Frames whose lengths do not add up, or of another format, are refused.
	ev := loadVectors(t).Events[0]
	for name, frame := range map[string]string{
		"short":      ev.Frame[:78],
		"extra byte": ev.Frame + "00",
		"truncated":  ev.Frame[:len(ev.Frame)-2],
		"format 2":   ev.Frame[:72] + "02" + ev.Frame[74:],
	} {
		if _, rej := g.reduce("c/frame", hexPayload(frame)); rej != "bad frame" {
			t.Errorf("%s frame: got %q, want rejection \"bad frame\"", name, rej)
		}
	}
}

// TestValues runs every value through the SDK's validator, reader and
// writer: the CBOR of the vectors as bytes, and their JSON as payloads
// (converted by the host). Either way the copy must be the vector's CBOR.
func TestValues(t *testing.T) {
	g := newGuest(t)
	v := loadVectors(t)
	for _, x := range v.Values {
		st, rej := g.reduce("c/value", hexPayload(x.CBOR))
		if got := hex.EncodeToString(st["/v"]); rej != "" || got != x.CBOR {
			t.Errorf("value %s from CBOR: got %s (rejection %q), want %s", x.Name, got, rej, x.CBOR)
		}
		st, rej = g.reduce("c/payload", x.JSON)
		if got := hex.EncodeToString(st["/v"]); rej != "" || got != x.CBOR {
			t.Errorf("value %s from JSON: got %s (rejection %q), want %s", x.Name, got, rej, x.CBOR)
		}
	}
	for _, x := range v.AcceptedValues {
		want := hex.EncodeToString(cborOf(t, x.JSON))
		st, rej := g.reduce("c/value", hexPayload(x.CBOR))
		if got := hex.EncodeToString(st["/v"]); rej != "" || got != want {
			t.Errorf("accepted value %s: got %s (rejection %q), want %s", x.Name, got, rej, want)
		}
	}
	invalid := v.InvalidValues
	// and some of our own: limits of the JSON data model
	deep := strings.Repeat("81", 257) + "80" // 258 nested arrays: the innermost at depth 257
	okDeep := strings.Repeat("81", 256) + "80"
	invalid = append(invalid,
		abitest.InvalidValue{Name: "too-deep", CBOR: deep},
		abitest.InvalidValue{Name: "surrogate", CBOR: "63eda080"},
		abitest.InvalidValue{Name: "overlong", CBOR: "62c0af"},
		abitest.InvalidValue{Name: "above-10ffff", CBOR: "64f4908080"},
		abitest.InvalidValue{Name: "neg-over-int64", CBOR: "3b8000000000000000"},
		abitest.InvalidValue{Name: "float32-inf", CBOR: "fa7f800000"},
		abitest.InvalidValue{Name: "map-short", CBOR: "a16161"},
		abitest.InvalidValue{Name: "text-short", CBOR: "6461"},
		abitest.InvalidValue{Name: "simple-24", CBOR: "f818"},
		abitest.InvalidValue{Name: "empty", CBOR: ""},
	)
	for _, x := range invalid {
		if _, rej := g.reduce("c/value", hexPayload(x.CBOR)); rej != "invalid: abi: invalid value" {
			t.Errorf("invalid value %s (%s): got %q, want the rejection \"invalid: abi: invalid value\"", x.Name, x.CBOR, rej)
		}
		// the host agrees
		if b, _ := hex.DecodeString(x.CBOR); abi.ValidateValue(b) == abi.StatusOK {
			t.Errorf("the host accepts %s", x.Name)
		}
	}
	if st, rej := g.reduce("c/value", hexPayload(okDeep)); rej != "" || hex.EncodeToString(st["/v"]) != okDeep {
		t.Errorf("256 levels of nesting: rejection %q", rej)
	}
	// float16 subnormals and negative zero read exactly
	for h, js := range map[string]string{"f90001": "5.960464477539063e-8", "f98000": "-0.0", "f9c400": "-4.0", "f97bff": "65504.0"} {
		st, rej := g.reduce("c/value", hexPayload(h))
		if want := hex.EncodeToString(cborOf(t, js)); rej != "" || hex.EncodeToString(st["/v"]) != want {
			t.Errorf("float16 %s: got %x (rejection %q), want %s", h, st["/v"], rej, want)
		}
	}
}

// TestPaths builds the vectors' paths from their keys.
func TestPaths(t *testing.T) {
	g := newGuest(t)
	for _, p := range loadVectors(t).Paths {
		keys, _ := json.Marshal(p.Keys)
		st, rej := g.reduce("c/path", `{"keys":`+string(keys)+`}`)
		if want := textCBOR(p.Path); rej != "" || hex.EncodeToString(st["/p"]) != want {
			t.Errorf("keys %q: got %x (rejection %q), want the path %q", p.Keys, st["/p"], rej, p.Path)
		}
	}
	// long keys, escapes in and after the first 8 bytes
	for _, k := range []string{"abcdefgh/ijk", "abcdefghijklmnop~", "a/b~c/d~e/f~g/h~i", strings.Repeat("x", 100)} {
		keys, _ := json.Marshal([]string{k, "y"})
		st, _ := g.reduce("c/path", `{"keys":`+string(keys)+`}`)
		if want := textCBOR("/" + abi.Escape(k) + "/y"); hex.EncodeToString(st["/p"]) != want {
			t.Errorf("key %q: got %x, want %s", k, st["/p"], want)
		}
	}
}

// TestState checks nodb_get's retry-on-grow, and the answers for missing
// and invalid paths.
func TestState(t *testing.T) {
	g := newGuest(t)
	for _, n := range []int{0, 10, 100_000, 3 << 20, 50} { // 3 MiB: past the free arena
		st, rej := g.reduce("c/big", `{"n":`+strconv.Itoa(n)+`}`)
		if rej != "" || string(st["/ok"]) != "\xf5" {
			t.Fatalf("big value of %d bytes: rejection %q", n, rej)
		}
	}
	if st, rej := g.reduce("c/missing", `{}`); rej != "" || string(st["/ok"]) != "\xf5" {
		t.Fatalf("missing: rejection %q", rej)
	}
}

// TestMessages checks the rejection messages the SDK builds.
func TestMessages(t *testing.T) {
	g := newGuest(t)
	for _, c := range []struct{ typ, payload, want string }{
		{"c/status", `{"op":"set","st":-2}`, "nodb: set /a/b: abi: invalid path"},
		{"c/status", `{"op":"delete","st":-4}`, "nodb: delete /a/b: abi: type mismatch"},
		{"c/status", `{"op":"set","st":-99}`, "nodb: set /a/b: abi: status -99"},
		{"c/return", `{"st":-5}`, "nodb: handler returned -5 (abi: too large)"},
		{"c/return", `{"st":7}`, "nodb: handler returned 7"},
	} {
		if _, rej := g.reduce(c.typ, c.payload); rej != c.want {
			t.Errorf("%s %s: got %q, want %q", c.typ, c.payload, rej, c.want)
		}
		// the Go SDK's message for the same failure
		if c.typ == "c/status" {
			var m struct {
				Op string
				St int32
			}
			json.Unmarshal([]byte(c.payload), &m)
			if goMsg := "nodb: " + m.Op + " /a/b: " + abi.Status(m.St).Error(); goMsg != c.want {
				t.Errorf("the Go SDK says %q", goMsg)
			}
		}
	}
	if _, rej := g.reduce("c/return", `{"st":0}`); rej != "" {
		t.Errorf("status 0 rejected: %q", rej)
	}
}

// TestDispatch checks the declarations and the "*" handler.
func TestDispatch(t *testing.T) {
	g := newGuest(t)
	// "*" among the declarations: the host delivers every type (Consumes nil)
	if got := g.mod.Info().Consumes; got != nil {
		t.Fatalf("consumes %q, want every type", got)
	}
	for _, typ := range []string{"other", "c/frames", "c", "todo/add"} {
		st, rej := g.reduce(typ, `{}`)
		if want := textCBOR(typ); rej != "" || hex.EncodeToString(st["/any"]) != want {
			t.Errorf("%s: /any = %x (rejection %q)", typ, st["/any"], rej)
		}
	}
}

// TestCheckedInWasmIsCurrent rebuilds testdata/conform.wasm and compares.
func TestCheckedInWasmIsCurrent(t *testing.T) {
	have, err := os.ReadFile("testdata/conform.wasm")
	if err != nil {
		t.Fatal(err)
	}
	conformance.CheckBuild(t, have, "testdata/build.sh")
}

// BenchmarkEmptyEvent is the fixed cost of one event through the host and
// the ABI with a C guest: the frame (payload JSON to CBOR), the call into
// nodb_reduce, a handler that reads one payload field and changes nothing.
func BenchmarkEmptyEvent(b *testing.B) {
	g := newGuest(b)
	ctx := context.Background()
	st := recState{}
	ev := plugins.Event{Producer: "p", Type: "c/return", Payload: []byte(`{"st":0}`)}
	for k := 0; b.Loop(); k++ {
		ev.Seq = uint64(k%4000 + 1) // one epoch
		if err := g.inst.Reduce(ctx, &ev, st); err != nil {
			b.Fatal(err)
		}
	}
}
