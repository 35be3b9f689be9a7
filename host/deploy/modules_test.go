package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
)

// TestCompiledModulesAreFreed: the manager keeps the compiled module of a
// version only while something uses it (a running view, an activation, a
// manual swap awaiting confirmation); swapped-out versions, replaced
// pending swaps, dry runs and reads of past states leave nothing behind, and
// the views keep working on their instances. Every version ever activated
// used to stay compiled (megabytes of machine code each) until the host
// stopped.
func TestCompiledModulesAreFreed(t *testing.T) {
	h := startHost(t, nil)
	shas := uploadVersions(t, h, 5)
	want := func(what string, versions ...string) {
		t.Helper()
		slices.Sort(versions)
		if got := h.mgr.CompiledVersions(); !slices.Equal(got, versions) {
			t.Fatalf("%s: compiled modules of %s, want %s", what, short(got), short(versions))
		}
	}
	activate := func(sha, policy, outcome string) {
		t.Helper()
		r := call(t, "POST", h.base+"/v1/views/p/activate", "", []byte(`{"sha256":"`+sha+`","policy":"`+policy+`"}`))
		if got := reportOutcome(r.Body); r.Status != 200 || got != outcome {
			t.Fatalf("activate %s (%s): %d %s, want outcome %s", sha[:12], policy, r.Status, r.Body, outcome)
		}
	}
	activate(shas[0], "always", "started")
	want("view p started with v0", shas[0])
	activate(shas[1], "always", "swapped")
	want("swapped to v1", shas[1])
	activate(shas[2], "always", "swapped")
	want("swapped to v2", shas[2])
	activate(shas[3], "manual", "awaiting-confirm")
	want("v3 awaits confirmation", shas[2], shas[3])
	activate(shas[4], "manual", "awaiting-confirm")
	want("v4 replaced the pending v3", shas[2], shas[4])
	if r := call(t, "POST", h.base+"/v1/views/p/confirm", "", nil); r.Status != 200 || !strings.Contains(r.Body, `"swapped"`) {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	want("v4 confirmed", shas[4])
	cand := append(fixture(t, "plumb.wasm"), 0, 3, 1, 'z', 0)
	if r := call(t, "POST", h.base+"/v1/views/p/dry-run", "", cand, "Content-Type", "application/wasm"); r.Status != 200 || !strings.Contains(r.Body, `"type":"report"`) {
		t.Fatalf("dry run: %d %s", r.Status, r.Body)
	}
	want("after a dry run", shas[4])
	if r := call(t, "POST", h.base+"/v1/views/p/rollback", "", nil); r.Status != 200 || reportOutcome(r.Body) != "swapped" {
		t.Fatalf("rollback: %d %s", r.Status, r.Body)
	}
	want("rolled back to v2", shas[2])

	// The view runs on: new events, and past states (fresh instances of
	// the running version) read after its old versions were closed.
	for i := uint64(4); i <= 6; i++ {
		if _, err := h.chron.Publish(context.Background(), wire.Event{Producer: "seed", PSeq: i, Type: "todo/add", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var v struct {
			Seq    uint64 `json:"seq"`
			Status string `json:"status"`
			Plugin string `json:"plugin"`
		}
		r := call(t, "GET", h.base+"/v1/views/p", "", nil)
		json.Unmarshal([]byte(r.Body), &v)
		if v.Seq >= 6 && v.Plugin == shas[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("view p after the swaps: %s", r.Body)
		}
	}
	if r := call(t, "GET", h.base+"/v1/views/p/state?at=2", "", nil); r.Status != 200 || !strings.Contains(r.Body, `"a":true`) {
		t.Fatalf("state at seq 2: %d %s", r.Status, r.Body)
	}
	want("after a read of a past state", shas[2])
	for _, sha := range []string{shas[0], shas[1], shas[3], shas[4]} {
		if r := call(t, "DELETE", h.base+"/v1/plugins/"+sha, "", nil); r.Status != 200 {
			t.Fatalf("delete %s: %d %s", sha[:12], r.Status, r.Body)
		}
	}
	want("after deleting the unused versions", shas[2])
}

// reportOutcome is the outcome of an NDJSON answer's final report.
func reportOutcome(body string) string {
	lines := strings.Split(strings.TrimSpace(body), "\n")
	var last struct {
		Report struct {
			Outcome string `json:"outcome"`
		} `json:"report"`
	}
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	return last.Report.Outcome
}

func short(shas []string) string {
	var out []string
	for i, s := range shas {
		out = append(out, fmt.Sprintf("%d:%s", i, s[:12]))
	}
	return "[" + strings.Join(out, " ") + "]"
}
