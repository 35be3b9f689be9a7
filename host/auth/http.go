package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// AccessTokenParam is the query parameter that carries a token on a
// WebSocket handshake, for browsers, which cannot set an Authorization
// header on a WebSocket.
const AccessTokenParam = "access_token"

// ReloadCheckInterval is how often, at most, an Authenticator looks at its
// token file's modification time to pick up `nodb token create/revoke`.
const ReloadCheckInterval = time.Second

// Authenticator turns a request's bearer token into a Principal. A nil
// *Authenticator, or one from OpenMode, authenticates every request as an
// implicit admin (a host without a token file).
type Authenticator struct {
	path   string
	logger hclog.Logger
	set    atomic.Pointer[Set]

	mu        sync.Mutex // serialises reloads
	stamp     fileStamp
	nextCheck atomic.Int64 // unix nanoseconds
}

type fileStamp struct {
	mod  time.Time
	size int64
}

var openPrincipal = OpenPrincipal()

// OpenMode returns an Authenticator that lets everyone in as admin.
func OpenMode() *Authenticator { return nil }

// Load reads the token file at path and returns an Authenticator that
// checks requests against it. The file is read again when its modification
// time or size changes (checked at most every ReloadCheckInterval), so
// tokens created or revoked with `nodb token` take effect without a
// restart; a file that has become invalid is logged and the last good
// tokens stay in use.
func Load(path string, logger hclog.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	a := &Authenticator{path: path, logger: logger}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// SetLogger sets where reloads of the token file are logged. Call it before
// the Authenticator is in use.
func (a *Authenticator) SetLogger(l hclog.Logger) {
	if a != nil && l != nil {
		a.logger = l
	}
}

// Open reports whether a is in open mode (no token file).
func (a *Authenticator) Open() bool { return a == nil }

// Path is the token file ("" in open mode).
func (a *Authenticator) Path() string {
	if a == nil {
		return ""
	}
	return a.path
}

// Tokens returns the tokens in use (nil in open mode).
func (a *Authenticator) Tokens() *Set {
	if a == nil {
		return nil
	}
	return a.set.Load()
}

// Reload reads the token file now. On error the tokens in use are kept.
func (a *Authenticator) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reloadLocked()
}

func (a *Authenticator) reloadLocked() error {
	// Stat before reading: a change between the two is seen at the next check.
	st, err := os.Stat(a.path)
	if err != nil {
		if _, rerr := ReadFile(a.path); rerr != nil {
			return rerr // explains a missing file
		}
		return err
	}
	f, err := ReadFile(a.path)
	if err != nil {
		return err
	}
	set, err := NewSet(f)
	if err != nil {
		return err
	}
	a.set.Store(set)
	a.stamp = fileStamp{st.ModTime(), st.Size()}
	a.nextCheck.Store(time.Now().Add(ReloadCheckInterval).UnixNano())
	return nil
}

// maybeReload re-reads the file if it changed, at most once per interval.
func (a *Authenticator) maybeReload() {
	now := time.Now().UnixNano()
	if now < a.nextCheck.Load() || !a.mu.TryLock() {
		return
	}
	defer a.mu.Unlock()
	a.nextCheck.Store(now + int64(ReloadCheckInterval))
	st, err := os.Stat(a.path)
	if err != nil {
		a.logger.Warn("cannot stat the token file; keeping the tokens loaded before", "file", a.path, "error", err)
		return
	}
	if st.ModTime().Equal(a.stamp.mod) && st.Size() == a.stamp.size {
		return
	}
	if err := a.reloadLocked(); err != nil {
		a.stamp = fileStamp{st.ModTime(), st.Size()} // do not retry every second
		a.logger.Error("the token file changed but cannot be used; keeping the tokens loaded before", "file", a.path, "error", err)
		return
	}
	a.logger.Info("token file reloaded", "file", a.path, "tokens", a.set.Load().Len())
}

// Authenticate returns the principal of r: from the header
// "Authorization: Bearer TOKEN", or, on a WebSocket handshake only, the
// query parameter access_token. A missing, malformed, unknown or revoked
// token is a 401 *Error. In open mode every request is an admin.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	if a == nil {
		return openPrincipal, nil
	}
	tok, err := bearer(r)
	if err != nil {
		return nil, err
	}
	a.maybeReload()
	return a.set.Load().Verify(tok)
}

// Valid reports whether p's token is still in the token file with the
// scopes p was given (always true in open mode). Long-lived connections
// call it to end sessions whose token was revoked or had its scopes
// changed since they authenticated; it picks up file changes like
// Authenticate.
func (a *Authenticator) Valid(p *Principal) bool {
	if a == nil {
		return true
	}
	a.maybeReload()
	e, ok := a.set.Load().byID[p.ID]
	return ok && slices.Equal(e.p.Scopes, p.Scopes)
}

func bearer(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", unauthorized(true, "the Authorization header must be \"Bearer <token>\"")
		}
		return tok, nil
	}
	q := r.URL.Query()
	if q.Has(AccessTokenParam) {
		if !isWebSocket(r) {
			return "", unauthorized(true, "the %s query parameter is accepted only on WebSocket handshakes (GET /v1/ws); send the header \"Authorization: Bearer <token>\"", AccessTokenParam)
		}
		if tok := q.Get(AccessTokenParam); tok != "" {
			return tok, nil
		}
	}
	return "", unauthorized(false, "this host requires a token: send the header \"Authorization: Bearer <token>\" (a browser WebSocket adds ?%s=<token> to the URL; the nodb CLI takes --token or $NODB_TOKEN); the host's operator creates tokens with nodb token create", AccessTokenParam)
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// WriteError writes err as an HTTP error: an *Error as its status (401 with
// a WWW-Authenticate: Bearer challenge, 403 with error="insufficient_scope")
// and a JSON body {"code","error"} like every other nodb error; anything
// else as a 401.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = unauthorized(false, "%v", err)
	}
	challenge := `Bearer realm="nodb"`
	switch {
	case e.Status == http.StatusForbidden:
		challenge += `, error="insufficient_scope"`
		if e.Scope != "" {
			challenge += `, scope="` + strings.ReplaceAll(e.Scope, `"`, "") + `"`
		}
	case e.InvalidToken:
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(e.Wire())
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal that NewContext stored, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
