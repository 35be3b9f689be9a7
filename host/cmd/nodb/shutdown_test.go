package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// viewPlugin returns the version view name runs.
func viewPlugin(t *testing.T, addr, name string) string {
	t.Helper()
	resp, err := testHTTP.Get("http://" + addr + "/v1/views/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Plugin string `json:"plugin"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Plugin
}

// TestShutdownDuringAnActivation: SIGTERM while an activation replays the
// log ends the activation at once (its stream says the host is shutting
// down), and nodb serve exits 0 within a few seconds; after a restart the
// view runs its old version (the swap did not happen) over every event.
// The HTTP server's shutdown used to wait for the activation's request
// until its 10 s timeout while the replay went on, then nodb serve exited
// 1 ("context deadline exceeded") and closed the modules and the log
// under the replay.
func TestShutdownDuringAnActivation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	todos := todosWasm(t)
	p := startServe(t, dir, addr, "--plugin", "todos="+todos)
	const n = 300
	for i := uint64(1); i <= n; i++ {
		postEvent(t, addr, "m", i, "todo/add", fmt.Sprintf(`{"id":"t%d","text":"x"}`, i))
	}
	for deadline := time.Now().Add(20 * time.Second); views(t, addr)["todos"].Seq < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("todos did not reach seq %d", n)
		}
	}
	before := views(t, addr)["todos"]
	oldPlugin := viewPlugin(t, addr, "todos")

	wasm, err := os.ReadFile(reducerWasm(t, "slow"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/plugins", bytes.NewReader(wasm))
	req.Header.Set("Content-Type", "application/wasm")
	req.Header.Set("X-Nodb-Manifest", `{"name":"todos"}`)
	resp, err := testHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		Manifest struct {
			SHA256 string `json:"sha256"`
		} `json:"manifest"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %s", resp.Status)
	}

	resp, err = testHTTP.Post("http://"+addr+"/v1/views/todos/activate", "application/json",
		strings.NewReader(`{"sha256":"`+up.Manifest.SHA256+`","policy":"always"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The stream began (the headers are flushed at once): let the replay
	// run a while (the slow reducer takes some 50 ms an event), then stop
	// the host.
	time.Sleep(1500 * time.Millisecond)
	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	sc := bufio.NewScanner(resp.Body)
	var last string
	for sc.Scan() {
		last = sc.Text()
		if strings.Contains(last, `"type":"progress"`) {
			var prog struct{ Seq, Head uint64 }
			json.Unmarshal([]byte(last), &prog)
			if prog.Seq >= prog.Head {
				t.Errorf("the replay finished after the signal (%s)", last)
			}
		}
	}
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		t.Fatalf("nodb serve still runs %v after SIGTERM", time.Since(sent))
	}
	took := time.Since(sent)
	t.Logf("exited %v after SIGTERM: %v; the activation's last line: %s", took.Round(time.Millisecond), p.err, last)
	if p.err != nil {
		t.Errorf("nodb serve exited with %v, want status 0", p.err)
	}
	if took > 5*time.Second {
		t.Errorf("nodb serve took %v to stop, want a few seconds at most", took)
	}
	var end struct {
		Type, Code, Error string
	}
	json.Unmarshal([]byte(last), &end)
	if end.Type != "error" || end.Code != "unavailable" || !strings.Contains(end.Error, "shutting down") || !strings.Contains(end.Error, "untouched") {
		t.Errorf("the activation's stream ended with %s, want an unavailable error saying the host is shutting down", last)
	}

	// The restarted host serves the old version over every event.
	startServe(t, dir, addr, "--plugin", "todos="+todos)
	for deadline := time.Now().Add(20 * time.Second); views(t, addr)["todos"].Seq < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("todos did not reach seq %d after the restart", n)
		}
	}
	after := views(t, addr)["todos"]
	if got := viewPlugin(t, addr, "todos"); got != oldPlugin {
		t.Errorf("after the restart todos runs %s, want the old version %s", got, oldPlugin)
	}
	if after.Seq != before.Seq || after.RootHash != before.RootHash {
		t.Errorf("after the restart todos is at seq %d hash %s, want seq %d hash %s", after.Seq, after.RootHash, before.Seq, before.RootHash)
	}
}
