package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
