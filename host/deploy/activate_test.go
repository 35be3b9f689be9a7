package deploy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentActivationsOfANewView: of two activations of the same new
// view at once, one starts it and the other waits its turn (busy) or swaps
// after it; never do both start a view. Both used to: each found no view,
// each started one under the name (the first kept running, orphaned, still
// writing snapshots), and the version the store recorded as active could be
// another than the one the host served.
func TestConcurrentActivationsOfANewView(t *testing.T) {
	h := startHost(t, nil)
	wasm := fixture(t, "plumb.wasm")
	var shas []string
	for i := range 2 {
		// The same module with a different custom section: another version.
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
