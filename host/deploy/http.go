package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/plugins/store"
)

// MaxUpload bounds an uploaded module.
const MaxUpload = 64 << 20

// ManifestHeader carries an upload's manifest (JSON) with a raw wasm body.
const ManifestHeader = "X-Nodb-Manifest"

// Register adds the plugin API to a server's mux:
//
//	POST   /v1/plugins                    body: the wasm; header X-Nodb-Manifest: manifest JSON
//	GET    /v1/plugins                    versions and active versions
//	DELETE /v1/plugins/{sha}              an inactive version
//	POST   /v1/views/{name}/activate      {"version"|"sha256", "policy"} → NDJSON progress + report
//	POST   /v1/views/{name}/confirm       perform a manual swap that is waiting
//	POST   /v1/views/{name}/rollback      back to the previous version → NDJSON
//	POST   /v1/views/{name}/dry-run       body: the candidate wasm → NDJSON progress + compare report
func (m *Manager) Register(handle func(pattern string, h http.Handler)) {
	handle("POST /v1/plugins", http.HandlerFunc(m.handleUpload))
	handle("GET /v1/plugins", http.HandlerFunc(m.handleList))
	handle("DELETE /v1/plugins/{sha}", http.HandlerFunc(m.handleDelete))
	handle("POST /v1/views/{name}/activate", http.HandlerFunc(m.handleActivate))
	handle("POST /v1/views/{name}/confirm", http.HandlerFunc(m.handleConfirm))
	handle("POST /v1/views/{name}/rollback", http.HandlerFunc(m.handleRollback))
	handle("POST /v1/views/{name}/dry-run", http.HandlerFunc(m.handleDryRun))
}

func httpError(w http.ResponseWriter, status int, code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(&wire.Error{Code: code, Message: fmt.Sprintf(format, args...)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// errStatus maps an error to an HTTP status and code.
func errStatus(err error) (int, string) {
	var re *store.RejectError
	switch {
	case errors.As(err, &re):
		return http.StatusUnprocessableEntity, "rejected"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, wire.CodeNotFound
	case errors.Is(err, errBusy):
		return http.StatusConflict, "busy"
	}
	return http.StatusBadRequest, wire.CodeBadRequest
}

func readWasm(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	wasm, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxUpload))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "the module is over the %d-byte limit", MaxUpload)
		} else {
			httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "reading the body: %v", err)
		}
		return nil, false
	}
	return wasm, true
}

func (m *Manager) handleUpload(w http.ResponseWriter, r *http.Request) {
	var man store.Manifest
	if h := r.Header.Get(ManifestHeader); h != "" {
		dec := json.NewDecoder(strings.NewReader(h))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&man); err != nil {
			httpError(w, http.StatusUnprocessableEntity, "rejected", "plugin rejected: the %s header is not a valid manifest: %v", ManifestHeader, err)
			return
		}
	}
	if n := r.URL.Query().Get("name"); n != "" && man.Name == "" {
		man.Name = n
	}
	wasm, ok := readWasm(w, r)
	if !ok {
		return
	}
	out, stored, err := m.cfg.Store.Put(r.Context(), wasm, man)
	if err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	status := http.StatusCreated
	if !stored {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"manifest": out, "stored": stored})
}

func (m *Manager) handleList(w http.ResponseWriter, r *http.Request) {
	list, err := m.cfg.Store.List()
	if err != nil {
		httpError(w, http.StatusInternalServerError, wire.CodeUnavailable, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"plugins": list, "active": m.cfg.Store.Actives()})
}

func (m *Manager) handleDelete(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("sha")
	man, err := m.cfg.Store.Resolve("", ref)
	if err == nil {
		err = m.cfg.Store.Delete(man.SHA256)
	}
	if err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": man.SHA256})
}

// ActivateRequest is the body of POST /v1/views/{name}/activate.
type ActivateRequest struct {
	// Version is a version label or a sha256 (prefix of at least 8).
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	// Policy overrides the manifest's swap policy.
	Policy string `json:"policy,omitempty"`
}

func (m *Manager) handleActivate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req ActivateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "body: want {\"version\" or \"sha256\", \"policy\"}: %v", err)
		return
	}
	ref := req.SHA256
	if ref == "" {
		ref = req.Version
	}
	if ref == "" {
		httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "give the version or sha256 to activate")
		return
	}
	man, err := m.cfg.Store.Resolve(name, ref)
	if err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	out := newNDJSON(w)
	rep, err := m.Activate(r.Context(), name, man.SHA256, req.Policy, false, out.progress)
	m.finish(out, rep, err)
}

func (m *Manager) finish(out *ndjson, rep any, err error) {
	if err != nil {
		_, code := errStatus(err)
		out.send(map[string]any{"type": "error", "code": code, "error": err.Error()})
		return
	}
	out.send(struct {
		Type   string `json:"type"`
		Report any    `json:"report"`
	}{"report", rep})
}

func (m *Manager) handleConfirm(w http.ResponseWriter, r *http.Request) {
	rep, err := m.Confirm(r.Context(), r.PathValue("name"))
	if err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (m *Manager) handleRollback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if a, ok := m.cfg.Store.Active(name); !ok || len(a.History) == 0 {
		httpError(w, http.StatusConflict, wire.CodeBadRequest, "view %q has no previous version to roll back to", name)
		return
	}
	out := newNDJSON(w)
	rep, err := m.Rollback(r.Context(), name, out.progress)
	m.finish(out, rep, err)
}

func (m *Manager) handleDryRun(w http.ResponseWriter, r *http.Request) {
	wasm, ok := readWasm(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	m.mu.Lock()
	_, exists := m.views[name]
	m.mu.Unlock()
	if !exists {
		httpError(w, http.StatusNotFound, wire.CodeNotFound, "no view named %q", name)
		return
	}
	if _, err := m.cfg.Store.Validate(r.Context(), wasm, store.Manifest{Name: name}); err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	out := newNDJSON(w)
	rep, err := m.DryRun(r.Context(), name, wasm, out.progress)
	if err != nil {
		var re *view.ReplayError
		if errors.As(err, &re) {
			m.finish(out, rep, nil)
			return
		}
	}
	m.finish(out, rep, err)
}
