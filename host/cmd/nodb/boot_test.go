package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDeployedViewThatCannotStart: a view deployed earlier (here todos,
// whose snapshot directory has become unusable) cannot start after a
// restart. The host runs without it and without the cascade that reads it,
// and serves its other views, as it logs. It used to refuse to start at
// all, saying the cascade's inputs "read each other in a cycle": the
// cascade waited for an input that would never run.
func TestDeployedViewThatCannotStart(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	p := startServe(t, dir, addr, "--plugin", "todos="+todosWasm(t), "--plugin", "todo-stats="+statsWasm(t), "--plugin", "other="+todosWasm(t))
	postEvent(t, addr, "p", 1, "todo/add", `{"id":"a","text":"milk"}`)
	if err := p.term(); err != nil {
		t.Fatalf("stopping: %v\n%s", err, p.stderr)
	}
	snaps := filepath.Join(dir, "snapshots", "todos")
	if err := os.RemoveAll(snaps); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(snaps), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snaps, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}

	p = startServe(t, dir, addr) // the views come from the plugin store
	vs := views(t, addr)
	if _, ok := vs["other"]; !ok {
		t.Errorf("view other does not run: %v", vs)
	}
	for _, name := range []string{"todos", "todo-stats"} {
		if _, ok := vs[name]; ok {
			t.Errorf("view %s runs", name)
		}
	}
	log := p.stderr.String()
	if !strings.Contains(log, `a deployed view could not start; the host runs without it: view=todos`) ||
		!strings.Contains(log, `a deployed view could not start; the host runs without it: view=todo-stats`) {
		t.Errorf("the log does not say which views did not start:\n%s", log)
	}
}

// TestDeployedViewWithACorruptModule: the stored module of a deployed view
// no longer matches its hash (a corrupted file under DATA/plugins). The
// host starts without that view, logs which view and file and what to do,
// serves its other views, and the view can be started again with another
// version. The host used to refuse to start at all (the same failure
// inside the view's start was only logged).
func TestDeployedViewWithACorruptModule(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	todos, same := todosWasm(t), reducerWasm(t, "v2same")
	p := startServe(t, dir, addr)
	for _, d := range []struct{ view, file string }{{"broken", todos}, {"other", same}} {
		if out, errOut, code := run(t, "deploy", "--addr", addr, "--name", d.view, "--policy", "always", "--quiet", d.file); code != 0 {
			t.Fatalf("deploy %s: exit %d %s %s", d.view, code, out, errOut)
		}
	}
	postEvent(t, addr, "p", 1, "todo/add", `{"id":"a","text":"milk"}`)
	if err := p.term(); err != nil {
		t.Fatalf("stopping: %v\n%s", err, p.stderr)
	}
	wasm, err := os.ReadFile(todos)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	file := filepath.Join(dir, "plugins", hex.EncodeToString(sum[:])+".wasm")
	stored, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)/2] ^= 0xff
	if err := os.WriteFile(file, stored, 0o644); err != nil {
		t.Fatal(err)
	}

	p = startServe(t, dir, addr)
	vs := views(t, addr)
	if _, ok := vs["broken"]; ok {
		t.Errorf("view broken runs with a corrupt module")
	}
	if v, ok := vs["other"]; !ok || v.Seq < 1 {
		t.Errorf("view other: %+v (running: %v)", v, ok)
	}
	log := p.stderr.String()
	for _, want := range []string{"a deployed view could not start; the host runs without it: view=broken", "file=" + file, "does not match its hash", "nodb deploy --name broken"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	// Deploying a version to the view starts it again.
	if out, errOut, code := run(t, "deploy", "--addr", addr, "--name", "broken", "--policy", "always", "--quiet", same); code != 0 || !strings.Contains(out, `"started"`) {
		t.Fatalf("deploy to the view that did not start: exit %d %s %s", code, out, errOut)
	}
	for deadline := time.Now().Add(10 * time.Second); views(t, addr)["broken"].Seq < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("view broken did not catch up: %+v", views(t, addr)["broken"])
		}
	}
}
