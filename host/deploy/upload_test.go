package deploy_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/plugins/store"
)

func multipartBody(t *testing.T, parts map[string][]byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for name, data := range parts {
		var w interface{ Write([]byte) (int, error) }
		var err error
		if name == "wasm" {
			w, err = mw.CreateFormFile(name, "plugin.wasm")
		} else {
			w, err = mw.CreateFormField(name)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// TestMultipartUpload: a module and its manifest as multipart/form-data
// (what an HTML form or curl -F sends), and its malformed variants.
func TestMultipartUpload(t *testing.T) {
	h := startHost(t, nil)
	stats := goWasm(t, "stats", "./examples/todos/stats")
	body, ct := multipartBody(t, map[string][]byte{"manifest": []byte(`{"name":"todo-stats","version":"7"}`), "wasm": stats})
	r := call(t, "POST", h.base+"/v1/plugins", "", body, "Content-Type", ct)
	var up struct {
		Manifest store.Manifest `json:"manifest"`
	}
	json.Unmarshal([]byte(r.Body), &up)
	if r.Status != 201 || up.Manifest.Version != "7" || up.Manifest.Kind != "cascade" || up.Manifest.Name != "todo-stats" {
		t.Fatalf("multipart upload: %d %s", r.Status, r.Body)
	}
	for _, c := range []struct {
		parts  map[string][]byte
		status int
		says   string
	}{
		{map[string][]byte{"manifest": []byte(`{"name":"x"}`)}, 400, `no "wasm" part`},
		{map[string][]byte{"manifest": []byte(`{"nme":"x"}`), "wasm": stats}, 422, `unknown field "nme"`},
		{map[string][]byte{"wasm": stats, "extra": []byte("?")}, 400, `unknown part "extra"`},
		{map[string][]byte{"manifest": []byte(`{"name":"x"}`), "wasm": []byte("not wasm")}, 422, "not a WebAssembly module"},
	} {
		body, ct := multipartBody(t, c.parts)
		r := call(t, "POST", h.base+"/v1/plugins", "", body, "Content-Type", ct)
		if r.Status != c.status || !strings.Contains(r.Err.Message, c.says) {
			t.Errorf("parts %v: %d %s, want %d saying %q", keys(c.parts), r.Status, r.Body, c.status, c.says)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
