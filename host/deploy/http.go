package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/auth"
	"github.com/nodb-dev/nodb/host/cascade"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/plugins/store"
)

// MaxUpload bounds an uploaded module.
const MaxUpload = 64 << 20

// ManifestHeader carries an upload's manifest (JSON) with a raw wasm body.
const ManifestHeader = "X-Nodb-Manifest"

// Router is where Register adds the plugin API (a *server.Server). Handle
// registers an endpoint for admin tokens only; HandleAuthenticated one for
// any valid token, whose handler decides with auth.FromContext.
type Router interface {
	Handle(pattern string, h http.Handler)
	HandleAuthenticated(pattern string, h http.Handler)
}

// Register adds the plugin API to a server:
//
//	POST   /v1/plugins                    body: the wasm; header X-Nodb-Manifest: manifest JSON
//	                                      or multipart/form-data: parts "manifest" (JSON) and "wasm"
//	GET    /v1/plugins                    versions and active versions
//	DELETE /v1/plugins/{sha}              an inactive version (admin)
//	POST   /v1/views/{name}/activate      {"version"|"sha256", "policy"} → NDJSON progress + report
//	POST   /v1/views/{name}/confirm       perform a manual swap that is waiting
//	POST   /v1/views/{name}/rollback      back to the previous version → NDJSON
//	POST   /v1/views/{name}/dry-run       body: the candidate wasm → NDJSON progress + compare report (admin)
//
// Admin tokens may do everything; deploy:cascade tokens may upload, list,
// activate, confirm and roll back cascades (auth.Principal.AuthorizeUpload
// and AuthorizeActivate decide).
func (m *Manager) Register(r Router) {
	r.HandleAuthenticated("POST /v1/plugins", http.HandlerFunc(m.handleUpload))
	r.HandleAuthenticated("GET /v1/plugins", http.HandlerFunc(m.handleList))
	r.Handle("DELETE /v1/plugins/{sha}", http.HandlerFunc(m.handleDelete))
	r.HandleAuthenticated("POST /v1/views/{name}/activate", http.HandlerFunc(m.handleActivate))
	r.HandleAuthenticated("POST /v1/views/{name}/confirm", http.HandlerFunc(m.handleConfirm))
	r.HandleAuthenticated("POST /v1/views/{name}/rollback", http.HandlerFunc(m.handleRollback))
	r.Handle("POST /v1/views/{name}/dry-run", http.HandlerFunc(m.handleDryRun))
}

// nobody is the principal of a request that carries none: it may do nothing.
var nobody, _ = auth.NewPrincipal("", "unauthenticated request", nil, auth.Limits{})

func principal(r *http.Request) *auth.Principal {
	if p := auth.FromContext(r.Context()); p != nil {
		return p
	}
	return nobody
}

// refuseNonCascade answers 403 and returns true when a non-admin asks to
// act on an existing view that is not a cascade, so that the answer does not
// depend on (or reveal) the state of views the token may not change.
func (m *Manager) refuseNonCascade(w http.ResponseWriter, p *auth.Principal, action, view string) bool {
	if p.Admin() {
		return false
	}
	if kind, exists := m.viewKind(view); exists && kind != auth.KindCascade {
		auth.WriteError(w, p.CheckAdmin(fmt.Sprintf("%s view %q: it is not a cascade view", action, view)))
		return true
	}
	return false
}

// authorizeActivation is the authorisation of making version man active in
// view (action: "activate", "confirm", "roll back").
func (m *Manager) authorizeActivation(p *auth.Principal, action, view string) authorizer {
	return func(man store.Manifest) error {
		if p.Admin() {
			return nil
		}
		kind, exists := m.viewKind(view)
		return p.AuthorizeActivate(auth.Activation{Action: action, View: view, Kind: man.Kind, Inputs: man.Inputs,
			Limits: auth.Limits(man.Limits), ViewExists: exists, ViewKind: kind})
	}
}

// shown returns man as p may see it. Upstream URLs may carry a token of
// another host (access_token), an administrator's secret: others get the
// URLs with its value replaced by "hidden".
func shown(p *auth.Principal, man store.Manifest) store.Manifest {
	if p.Admin() || len(man.Upstreams) == 0 {
		return man
	}
	up := make(map[string]string, len(man.Upstreams))
	for name, raw := range man.Upstreams {
		u, err := url.Parse(raw)
		if err != nil {
			up[name] = "hidden (not a URL)"
			continue
		}
		if q := u.Query(); q.Has("access_token") {
			q.Set("access_token", "hidden")
			u.RawQuery = q.Encode()
		}
		up[name] = u.Redacted()
	}
	man.Upstreams = up
	return man
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
	var ae *auth.Error
	var nv noViewError
	switch {
	case errors.As(err, &nv):
		return http.StatusNotFound, wire.CodeNotFound
	case errors.As(err, &ae):
		return ae.Status, ae.Code
	case errors.As(err, &re):
		return http.StatusUnprocessableEntity, "rejected"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, wire.CodeNotFound
	case errors.Is(err, errBusy):
		return http.StatusConflict, "busy"
	case errors.Is(err, ErrShuttingDown):
		return http.StatusServiceUnavailable, wire.CodeUnavailable
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

// readUpload reads an upload: a raw wasm body with the manifest in the
// X-Nodb-Manifest header, or multipart/form-data with a "manifest" part
// (JSON) and a "wasm" part (the module). ok is false when it answered.
func readUpload(w http.ResponseWriter, r *http.Request) (man store.Manifest, wasm []byte, ok bool) {
	decode := func(src string, text []byte) bool {
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&man); err != nil {
			httpError(w, http.StatusUnprocessableEntity, "rejected", "plugin rejected: the %s is not a valid manifest: %v", src, err)
			return false
		}
		return true
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		if h := r.Header.Get(ManifestHeader); h != "" && !decode(ManifestHeader+" header", []byte(h)) {
			return man, nil, false
		}
		wasm, ok = readWasm(w, r)
		return man, wasm, ok
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, MaxUpload+1<<20), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				httpError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "the upload is over the %d-byte limit", MaxUpload)
			} else {
				httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "reading the multipart body: %v", err)
			}
			return man, nil, false
		}
		b, err := io.ReadAll(io.LimitReader(part, MaxUpload+1))
		if err != nil {
			httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "reading part %q: %v", part.FormName(), err)
			return man, nil, false
		}
		switch part.FormName() {
		case "manifest":
			if !decode("\"manifest\" part", b) {
				return man, nil, false
			}
		case "wasm":
			if len(b) > MaxUpload {
				httpError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "the module is over the %d-byte limit", MaxUpload)
				return man, nil, false
			}
			wasm = b
		default:
			httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "unknown part %q: send \"manifest\" (JSON) and \"wasm\" (the module)", part.FormName())
			return man, nil, false
		}
	}
	if wasm == nil {
		httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "the multipart upload has no \"wasm\" part (the module)")
		return man, nil, false
	}
	return man, wasm, true
}

func (m *Manager) handleUpload(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if err := p.CheckListPlugins(); err != nil { // admin or deploy:cascade, before reading the body
		auth.WriteError(w, err)
		return
	}
	man, wasm, ok := readUpload(w, r)
	if !ok {
		return
	}
	if n := r.URL.Query().Get("name"); n != "" && man.Name == "" {
		man.Name = n
	}
	// The token's limits fill in or cap the manifest's before validation
	// checks them against the host's maxima and the module's minimum.
	lim, err := p.CheckLimits(auth.Limits(man.Limits))
	if err != nil {
		auth.WriteError(w, err)
		return
	}
	man.Limits = store.Limits(lim)
	// Authorise what the module itself declares (its kind and inputs come
	// from its _initialize; a manifest cannot claim otherwise).
	checked, err := m.cfg.Store.Validate(r.Context(), wasm, man)
	if err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	if _, err := p.AuthorizeUpload(checked.Kind, checked.Inputs, auth.Limits(checked.Limits)); err != nil {
		auth.WriteError(w, err)
		return
	}
	if len(man.Upstreams) > 0 {
		// A cascade reading another host makes this host connect where the
		// manifest says: an administrator's decision.
		if err := p.CheckAdmin("point a cascade at another host (manifest upstreams)"); err != nil {
			auth.WriteError(w, err)
			return
		}
		for name, u := range man.Upstreams {
			if _, err := cascade.ParseRemote(name, u, nil); err != nil {
				httpError(w, http.StatusUnprocessableEntity, "rejected", "plugin rejected: %v", err)
				return
			}
		}
	}
	out, stored, err := m.cfg.Store.PutValidated(wasm, checked)
	if err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	status := http.StatusCreated
	if !stored {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"manifest": shown(p, out), "stored": stored})
}

// handleList lists every version and active record to an admin, and to a
// deploy:cascade token the cascades over views it may read (and the views
// running one).
func (m *Manager) handleList(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if err := p.CheckListPlugins(); err != nil {
		auth.WriteError(w, err)
		return
	}
	list, err := m.cfg.Store.List()
	if err != nil {
		httpError(w, http.StatusInternalServerError, wire.CodeUnavailable, "%v", err)
		return
	}
	actives := m.cfg.Store.Actives()
	if !p.Admin() {
		cascades := list[:0:0]
		isCascade := map[string]bool{}
		for _, man := range list {
			if man.Kind == auth.KindCascade && p.CanDeployCascade(man.Inputs) == nil {
				cascades = append(cascades, shown(p, man))
				isCascade[man.SHA256] = true
			}
		}
		shown := actives[:0:0]
		for _, a := range actives {
			if isCascade[a.SHA256] {
				shown = append(shown, a)
			}
		}
		list, actives = cascades, shown
	}
	writeJSON(w, http.StatusOK, map[string]any{"plugins": list, "active": actives})
}

func (m *Manager) handleDelete(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("sha")
	man, err := m.cfg.Store.Resolve("", ref)
	if err == nil {
		err = m.Delete(man.SHA256)
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
	if err := CheckViewName(name); err != nil {
		httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "%v", err)
		return
	}
	var req ActivateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "body: want {\"version\" or \"sha256\", \"policy\"}: %v", err)
		return
	}
	if req.Policy != "" {
		if err := checkPolicy(req.Policy); err != nil {
			httpError(w, http.StatusBadRequest, wire.CodeBadRequest, "%v", err)
			return
		}
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
	// Decided here for a plain 403, and again with the view locked (the
	// view may change in between), then reported in the stream.
	authz := m.authorizeActivation(principal(r), "activate", name)
	if err := authz(man); err != nil {
		auth.WriteError(w, err)
		return
	}
	out := newNDJSON(w)
	rep, err := m.activate(r.Context(), name, man.SHA256, req.Policy, false, out.progress, authz)
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
	name := r.PathValue("name")
	authz := m.authorizeActivation(principal(r), "confirm", name)
	if man, ok := m.pendingManifest(name); ok {
		if err := authz(man); err != nil {
			auth.WriteError(w, err)
			return
		}
	} else if m.refuseNonCascade(w, principal(r), "confirm swaps of", name) {
		return
	}
	rep, err := m.confirm(r.Context(), name, authz)
	if err != nil {
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (m *Manager) handleRollback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	authz := m.authorizeActivation(principal(r), "roll back", name)
	a, ok := m.cfg.Store.Active(name)
	if !ok || len(a.History) == 0 {
		if m.refuseNonCascade(w, principal(r), "roll back", name) {
			return
		}
		httpError(w, http.StatusConflict, wire.CodeBadRequest, "view %q has no previous version to roll back to", name)
		return
	}
	prev := a.History[len(a.History)-1]
	target, err := m.cfg.Store.Resolve("", prev)
	if err != nil {
		if m.refuseNonCascade(w, principal(r), "roll back", name) {
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("view %q rolls back to version %s, which was deleted from the plugin store; activate a stored version instead (GET /v1/plugins lists them): %w", name, prev[:min(12, len(prev))], err)
		}
		st, code := errStatus(err)
		httpError(w, st, code, "%v", err)
		return
	}
	if err := authz(target); err != nil {
		auth.WriteError(w, err)
		return
	}
	out := newNDJSON(w)
	rep, err := m.rollback(r.Context(), name, out.progress, authz)
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
