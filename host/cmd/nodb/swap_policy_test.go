package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestManualSwapAndFailingShadow: a manual activation replays and waits,
// changing nothing until confirmed; a candidate that fails during its shadow
// replay (an endless loop) is abandoned with a report, and the live view is
// untouched.
func TestManualSwapAndFailingShadow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	startServe(t, dir, addr, "--plugin", "todos="+todosWasm(t))
	for i := uint64(1); i <= 20; i++ {
		postEvent(t, addr, "m", i, "todo/add", fmt.Sprintf(`{"id":"t%d","text":"x"}`, i))
	}
	waitSeq := func(seq uint64) {
		for deadline := time.Now().Add(20 * time.Second); views(t, addr)["todos"].Seq < seq; {
			if time.Now().After(deadline) {
				t.Fatalf("todos did not reach seq %d", seq)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitSeq(20)
	before := views(t, addr)["todos"].RootHash

	// manual: replayed and compared, but nothing changes until confirmed.
	rep, code := deployCLI(t, addr, reducerWasm(t, "v2changed"), "manual")
	if code != 0 || rep.Outcome != "awaiting-confirm" || rep.Swap.Identical {
		t.Fatalf("manual activation: exit %d %+v", code, rep)
	}
	if h := views(t, addr)["todos"].RootHash; h != before {
		t.Fatal("a manual activation changed the view before confirmation")
	}
	resp, err := testHTTP.Post("http://"+addr+"/v1/views/todos/confirm", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"swapped"`) {
		t.Fatalf("confirm: %s %s", resp.Status, body)
	}
	// The swap is recorded as an event, after which the view reflects v2.
	waitSeq(21)
	swapped := views(t, addr)["todos"].RootHash
	if swapped == before {
		t.Fatal("confirming did not change the view")
	}

	// A candidate that loops forever fails in its shadow replay: abandoned
	// with a report; the live view keeps its reducer and state.
	rep, code = deployCLI(t, addr, "../../../plugins/testdata/loop.wasm", "always")
	if code == 0 || rep.Outcome == "swapped" {
		t.Fatalf("a looping candidate was swapped in: exit %d %+v", code, rep)
	}
	t.Logf("looping candidate: outcome %q: %s", rep.Outcome, rep.Error)
	vs := views(t, addr)["todos"]
	if vs.RootHash != swapped || vs.Status == "halted" {
		t.Fatalf("the failed shadow touched the live view: %+v", vs)
	}
	postEvent(t, addr, "m", 21, "todo/add", `{"id":"after","text":"still live"}`)
	waitSeq(22)
}

// TestConfirmCommand: a manual deploy through the CLI ends awaiting
// confirmation (and says how to confirm); nodb confirm performs the swap
// and prints the report; confirming again, with nothing waiting, fails
// with the host's reason. Confirming used to need curl.
func TestConfirmCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	startServe(t, dir, addr, "--plugin", "todos="+todosWasm(t))
	postEvent(t, addr, "m", 1, "todo/add", `{"id":"a","text":"x"}`)
	old := viewPlugin(t, addr, "todos")
	out, errOut, code := run(t, "deploy", "--addr", addr, "--name", "todos", "--policy", "manual", reducerWasm(t, "v2changed"))
	if code != 0 || !strings.Contains(out, `"awaiting-confirm"`) || !strings.Contains(errOut, "nodb confirm --view todos") {
		t.Fatalf("manual deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := viewPlugin(t, addr, "todos"); got != old {
		t.Fatalf("the view runs %s before confirmation, want %s", got, old)
	}
	out, errOut, code = run(t, "confirm", "--addr", addr, "--view", "todos")
	var rep struct {
		Outcome string `json:"outcome"`
		SHA256  string `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Outcome != "swapped" {
		t.Fatalf("nodb confirm: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	if got := viewPlugin(t, addr, "todos"); got != rep.SHA256 || got == old {
		t.Errorf("after nodb confirm the view runs %s, want %s", got, rep.SHA256)
	}
	_, errOut, code = run(t, "confirm", "--addr", addr, "--view", "todos")
	if code == 0 || !strings.Contains(errOut, "no swap awaiting confirmation") {
		t.Errorf("nodb confirm with nothing waiting: exit %d %s", code, errOut)
	}
	_, errOut, code = run(t, "confirm", "--addr", addr, "--view", "nope")
	if code == 0 || !strings.Contains(errOut, `no view named "nope"`) {
		t.Errorf("nodb confirm of a missing view: exit %d %s", code, errOut)
	}
}
