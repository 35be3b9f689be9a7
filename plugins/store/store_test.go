package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	rt, err := plugins.NewRuntime(context.Background(), plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	s, err := Open(t.TempDir(), rt, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// todosWasm builds the example todos reducer (examples/todos/reducer) from
// source, so the tests do not depend on a make target having built
// examples/todos/todos.wasm.
func todosWasm(t *testing.T) []byte {
	t.Helper()
	b, err := gowasm.Module(context.Background(), "", "../../examples/todos/reducer")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirNames(t *testing.T, d string) []string {
	t.Helper()
	ents, _ := os.ReadDir(d)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestPutListActivateDelete(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	wasm := todosWasm(t)
	m, stored, err := s.Put(ctx, wasm, Manifest{Name: "todos", Version: "1.0.0"})
	if err != nil || !stored {
		t.Fatalf("put: %v %v", stored, err)
	}
	sum := sha256.Sum256(wasm)
	if m.SHA256 != hex.EncodeToString(sum[:]) || m.Kind != "reducer" || m.ABIVersion != 1 || m.SwapPolicy != PolicyIfIdentical || len(m.Consumes) == 0 {
		t.Fatalf("manifest %+v", m)
	}
	if _, stored, _ := s.Put(ctx, wasm, Manifest{Name: "todos", Version: "again"}); stored {
		t.Fatal("same bytes stored twice")
	}
	list, _ := s.List()
	if len(list) != 1 || list[0].Version != "1.0.0" {
		t.Fatalf("list %+v", list)
	}
	if got, err := s.Resolve("todos", "1.0.0"); err != nil || got.SHA256 != m.SHA256 {
		t.Fatalf("resolve: %v", err)
	}
	if err := s.SetActive("todos", m.SHA256, false, m.SHA256); err != nil {
		t.Fatal(err)
	}
	var re *RejectError
	if err := s.Delete(m.SHA256); !errors.As(err, &re) || !strings.Contains(err.Error(), "active") {
		t.Fatalf("deleting the active version: %v", err)
	}
	// The active record survives a reopen.
	s2, err := Open(s.dir, s.rt, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := s2.Active("todos"); !ok || a.SHA256 != m.SHA256 || a.Boot != m.SHA256 {
		t.Fatalf("active after reopen: %+v %v", a, ok)
	}
	_, got, err := s2.Get(m.SHA256)
	if err != nil || len(got) != len(wasm) {
		t.Fatalf("get: %v", err)
	}
}

func TestBadUploads(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	good := todosWasm(t)
	cases := []struct {
		name string
		wasm []byte
		m    Manifest
		want string
	}{
		{"not wasm", []byte("hello, this is not a module"), Manifest{Name: "x"}, "not a WebAssembly module"},
		{"wrong ABI", read(t, "../testdata/abiv2.wasm"), Manifest{Name: "x"}, "another ABI version"},
		{"missing exports", read(t, "../testdata/noexports.wasm"), Manifest{Name: "x"}, "missing export"},
		{"init traps", read(t, "../testdata/initpanic.wasm"), Manifest{Name: "x"}, "_initialize"},
		{"too much memory", good, Manifest{Name: "x", Limits: Limits{MemoryPages: 1 << 20}}, "over the host's maximum"},
		{"too long timeout", good, Manifest{Name: "x", Limits: Limits{EventTimeoutMS: 3_600_000}}, "event_timeout_ms"},
		// In nanoseconds these wrap around int64: to 448384 ns, and to a
		// negative duration. Both used to pass as within 0..60000 ms.
		{"timeout wrapping to 0.4 ms", good, Manifest{Name: "x", Limits: Limits{EventTimeoutMS: 18_446_744_073_710}}, "event_timeout_ms"},
		{"timeout wrapping negative", good, Manifest{Name: "x", Limits: Limits{EventTimeoutMS: 9_223_372_036_855}}, "event_timeout_ms"},
		{"hash mismatch", good, Manifest{Name: "x", SHA256: strings.Repeat("ab", 32)}, "does not match"},
		{"bad policy", good, Manifest{Name: "x", SwapPolicy: "sometimes"}, "swap_policy"},
		{"bad kind", good, Manifest{Name: "x", Kind: "envoy"}, "kind"},
		{"declared ABI", good, Manifest{Name: "x", ABIVersion: 2}, "ABI version 2"},
	}
	before := dirNames(t, s.dir)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stored, err := s.Put(ctx, c.wasm, c.m)
			var re *RejectError
			if !errors.As(err, &re) || stored {
				t.Fatalf("want a rejection, got %v (stored %v)", err, stored)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("rejection %q does not say %q", err, c.want)
			}
			t.Log(err)
		})
	}
	if after := dirNames(t, s.dir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("rejected uploads changed the store: %v -> %v", before, after)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("list after rejections: %v", list)
	}
	_ = filepath.Join
}

// TestOpenRemovesLeftovers: a crash can leave temp files (.tmp-<digits>)
// and a module whose manifest was never written (or already deleted) in
// the store's directory. Open removes exactly those, logs each, and leaves
// the stored versions, the active record and every other file alone. They
// used to stay forever.
func TestOpenRemovesLeftovers(t *testing.T) {
	s := newStore(t)
	m, _, err := s.Put(context.Background(), todosWasm(t), Manifest{Name: "todos"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetActive("todos", m.SHA256, false, ""); err != nil {
		t.Fatal(err)
	}
	sha := func(b string) string { sum := sha256.Sum256([]byte(b)); return hex.EncodeToString(sum[:]) }
	orphan, lone := sha("orphan"), sha("lone manifest")
	plant := map[string]bool{ // name: removed
		".tmp-1234567890":                 true,
		".tmp-7":                          true,
		orphan + ".wasm":                  true,
		".tmp-planted":                    false, // not a name writeFile makes
		".tmp-":                           false,
		"notes.txt":                       false,
		"abc.wasm":                        false, // not a sha256
		lone + ".json":                    false, // a manifest alone: not the store's leftover
		strings.ToUpper(orphan) + ".wasm": false,
	}
	for name := range plant {
		data := []byte("x")
		if name == lone+".json" {
			data = []byte(`{"name":"lone","sha256":"` + lone + `"}`)
		}
		if err := os.WriteFile(filepath.Join(s.dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.dir, ".tmp-42"), 0o755); err != nil { // a directory: not ours
		t.Fatal(err)
	}
	plant[".tmp-42"] = false

	var logged bytes.Buffer
	s2, err := Open(s.dir, s.rt, 0, hclog.New(&hclog.LoggerOptions{Output: &logged}))
	if err != nil {
		t.Fatal(err)
	}
	for name, removed := range plant {
		_, err := os.Stat(filepath.Join(s.dir, name))
		switch {
		case removed && err == nil:
			t.Errorf("%s was left", name)
		case !removed && err != nil:
			t.Errorf("%s was removed: %v", name, err)
		}
		if got := strings.Contains(logged.String(), filepath.Join(s.dir, name)+" "); got != removed {
			t.Errorf("%s: logged %v, removed %v:\n%s", name, got, removed, logged.String())
		}
	}
	if _, wasm, err := s2.Get(m.SHA256); err != nil || len(wasm) != m.Size {
		t.Errorf("the stored version after Open: %d bytes, %v", len(wasm), err)
	}
	if a, ok := s2.Active("todos"); !ok || a.SHA256 != m.SHA256 {
		t.Errorf("the active record after Open: %+v %v", a, ok)
	}
	if list, err := s2.List(); err != nil || len(list) != 2 {
		t.Errorf("versions after Open: %v %v", list, err) // todos and the lone manifest's
	}
}
