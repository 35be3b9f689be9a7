package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nodb-dev/nodb/abi/wire"
)

// TestConcurrentActivationsOfANewView: of two activations of the same new
// view at once, one starts it and the other waits its turn (busy) or swaps
// after it; never do both start a view. Both used to: each found no view,
// each started one under the name (the first kept running, orphaned, still
// writing snapshots), and the version the store recorded as active could be
// another than the one the host served.
func TestConcurrentActivationsOfANewView(t *testing.T) {
	h := startHost(t, nil)
	shas := uploadVersions(t, h, 2)
	for k := range 20 {
		name := fmt.Sprintf("v%d", k)
		outcomes := make([]string, 2)
		var wg sync.WaitGroup
		for i, sha := range shas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := call(t, "POST", h.base+"/v1/views/"+name+"/activate", "", []byte(`{"sha256":"`+sha+`"}`))
				lines := strings.Split(strings.TrimSpace(r.Body), "\n")
				var last struct {
					Type   string `json:"type"`
					Code   string `json:"code"`
					Report struct {
						Outcome string `json:"outcome"`
					} `json:"report"`
				}
				json.Unmarshal([]byte(lines[len(lines)-1]), &last)
				outcomes[i] = last.Type + ":" + last.Report.Outcome + last.Code
			}()
		}
		wg.Wait()
		if outcomes[0] == "report:started" && outcomes[1] == "report:started" {
			t.Fatalf("view %s: both activations started it: %v", name, outcomes)
		}
		var view struct {
			Plugin string `json:"plugin"`
		}
		r := call(t, "GET", h.base+"/v1/views/"+name, "", nil)
		json.Unmarshal([]byte(r.Body), &view)
		a, ok := h.store.Active(name)
		if !ok || a.SHA256 != view.Plugin {
			t.Fatalf("view %s serves %s; the store's active version is %s (%v)", name, view.Plugin, a.SHA256, outcomes)
		}
	}
}

// TestDeleteRefusesAVersionInUse: a version a manual swap awaits
// confirmation with cannot be deleted (409 busy); after the confirmation
// the swapped-out version can, and the active one cannot. Deleting it
// under the pending swap used to succeed: the confirmation then swapped
// to a version the store no longer had, so the store kept naming the old
// version and a restart went back to it.
func TestDeleteRefusesAVersionInUse(t *testing.T) {
	h := startHost(t, nil)
	shas := uploadVersions(t, h, 2)
	v1, v2 := shas[0], shas[1]
	outcome := func(r result) string { // of an NDJSON answer's final report
		lines := strings.Split(strings.TrimSpace(r.Body), "\n")
		var last struct {
			Report struct {
				Outcome string `json:"outcome"`
			} `json:"report"`
		}
		json.Unmarshal([]byte(lines[len(lines)-1]), &last)
		return last.Report.Outcome
	}
	wantStatus := func(what string, r result, status int, contains string) {
		t.Helper()
		if r.Status != status || !strings.Contains(r.Body, contains) {
			t.Fatalf("%s: got %d %s, want %d containing %q", what, r.Status, r.Body, status, contains)
		}
	}
	if got := outcome(call(t, "POST", h.base+"/v1/views/p/activate", "", []byte(`{"sha256":"`+v1+`"}`))); got != "started" {
		t.Fatalf("activate v1: %s", got)
	}
	if got := outcome(call(t, "POST", h.base+"/v1/views/p/activate", "", []byte(`{"sha256":"`+v2+`","policy":"manual"}`))); got != "awaiting-confirm" {
		t.Fatalf("activate v2 manual: %s", got)
	}
	wantStatus("delete of the version awaiting confirmation", call(t, "DELETE", h.base+"/v1/plugins/"+v2, "", nil), 409, "awaits confirmation")
	wantStatus("confirm", call(t, "POST", h.base+"/v1/views/p/confirm", "", nil), 200, `"outcome":"swapped"`)
	if a, ok := h.store.Active("p"); !ok || a.SHA256 != v2 {
		t.Fatalf("after the confirmation the store names %s, want %s", a.SHA256, v2)
	}
	wantStatus("delete of the swapped-out version", call(t, "DELETE", h.base+"/v1/plugins/"+v1, "", nil), 200, v1)
	wantStatus("delete of the active version", call(t, "DELETE", h.base+"/v1/plugins/"+v2, "", nil), 422, "is active")
}

// uploadVersions uploads n versions of the plumb fixture (the same module
// with a different custom section each) and returns their sha256s.
func uploadVersions(t *testing.T, h *host, n int) []string {
	t.Helper()
	wasm := fixture(t, "plumb.wasm")
	var shas []string
	for i := range n {
		w := append(append([]byte(nil), wasm...), 0, 3, 1, byte('a'+i), 0)
		r := upload(t, h, "", w, map[string]any{"name": "x"})
		var up struct {
			Manifest struct {
				SHA256 string `json:"sha256"`
			} `json:"manifest"`
		}
		if err := json.Unmarshal([]byte(r.Body), &up); err != nil || r.Status != 201 {
			t.Fatalf("upload: %d %s", r.Status, r.Body)
		}
		shas = append(shas, up.Manifest.SHA256)
	}
	return shas
}

// TestActivateRefusesViewNamesThatAreNotAFileName: a view's name becomes a
// directory under DATA/snapshots, so a name that is "..", or holds a slash
// (sent escaped, %2F, in the URL), would put the view's files elsewhere.
// Such names were accepted: activating "../plugins" started a view whose
// start-up deleted the plugin store's temp files (a snapshot directory's
// leftovers) and whose snapshots went into the store's directory.
func TestActivateRefusesViewNamesThatAreNotAFileName(t *testing.T) {
	h := startHost(t, nil)
	sha := uploadVersions(t, h, 1)[0]
	planted := filepath.Join(h.store.Dir(), ".tmp-planted")
	if err := os.WriteFile(planted, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"..%2Fplugins", "%2E%2E", "a%2Fb", "..%2F..%2Foutside", "a%5Cb", "%00"} {
		r := call(t, "POST", h.base+"/v1/views/"+name+"/activate", "", []byte(`{"sha256":"`+sha+`"}`))
		if r.Status != 400 || r.Err.Code != wire.CodeBadRequest || !strings.Contains(r.Err.Message, "letters, digits") {
			t.Errorf("activate view %s: %d %s, want 400 naming the allowed characters", name, r.Status, r.Body)
		}
	}
	if _, err := os.Stat(planted); err != nil {
		t.Errorf("the store's file %s: %v", planted, err)
	}
	if a := h.store.Actives(); len(a) != 0 {
		t.Errorf("refused activations recorded views: %+v", a)
	}
}

// TestPluginAPIRefusalStatuses: requests the plugin API can refuse before
// doing anything are answered with the HTTP status that says what was
// wrong, not with 200 and an NDJSON stream (a policy nobody knows), nor
// 400 for a view that does not exist (404).
func TestPluginAPIRefusalStatuses(t *testing.T) {
	h := startHost(t, nil)
	sha := uploadVersions(t, h, 1)[0]
	for _, c := range []struct {
		what, method, path, body string
		status                   int
		code, says               string
	}{
		{"unknown policy", "POST", "/v1/views/p/activate", `{"sha256":"` + sha + `","policy":"sometimes"}`, 400, wire.CodeBadRequest, `policy "sometimes" is unknown`},
		{"confirm in no view", "POST", "/v1/views/nope/confirm", "", 404, wire.CodeNotFound, `no view named "nope"`},
	} {
		r := call(t, c.method, h.base+c.path, "", []byte(c.body))
		if r.Status != c.status || r.Err.Code != c.code || !strings.Contains(r.Err.Message, c.says) {
			t.Errorf("%s: %d %s, want %d %s saying %q", c.what, r.Status, r.Body, c.status, c.code, c.says)
		}
	}
	if _, ok := h.store.Active("p"); ok {
		t.Errorf("the refused activation started view p")
	}
}

// TestRollbackToADeletedVersion: a version that is no longer active may be
// deleted, even the one a rollback would go back to. The rollback then
// says so and what to do instead; it used to answer only
// `store: no such plugin version: "<sha>"`.
func TestRollbackToADeletedVersion(t *testing.T) {
	h := startHost(t, nil)
	shas := uploadVersions(t, h, 2)
	for _, sha := range shas {
		if r := call(t, "POST", h.base+"/v1/views/p/activate", "", []byte(`{"sha256":"`+sha+`","policy":"always"}`)); r.Status != 200 || strings.Contains(r.Body, `"type":"error"`) {
			t.Fatalf("activate %s: %d %s", sha, r.Status, r.Body)
		}
	}
	if r := call(t, "DELETE", h.base+"/v1/plugins/"+shas[0], "", nil); r.Status != 200 {
		t.Fatalf("delete the previous version: %d %s", r.Status, r.Body)
	}
	r := call(t, "POST", h.base+"/v1/views/p/rollback", "", nil)
	if r.Status != 404 || r.Err.Code != wire.CodeNotFound || !strings.Contains(r.Err.Message, `view "p" rolls back to version `+shas[0][:12]) ||
		!strings.Contains(r.Err.Message, "was deleted") || !strings.Contains(r.Err.Message, "activate") {
		t.Errorf("rollback to a deleted version: %d %s", r.Status, r.Body)
	}
}
