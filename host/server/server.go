// Package server is nodb's network face: the WebSocket client protocol
// (abi/PROTOCOL.md), the HTTP API and the operational endpoints (/livez,
// /readyz, /metrics). It owns no state of its own; it connects clients to the
// chronicler (and, as they are added, to the view engine and hub).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/auth"
	"github.com/nodb-dev/nodb/host/chronicler"
	"github.com/nodb-dev/nodb/host/view"
)

// Config tunes a Server.
type Config struct {
	// MaxFrame bounds one WebSocket frame and one HTTP request body.
	// Default wire.DefaultMaxFrame (1 MiB).
	MaxFrame int
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that may
	// open a WebSocket and send API requests other than GET and HEAD; "*"
	// allows any. A request without an Origin header (not from a browser)
	// and a same-host origin are always allowed.
	AllowedOrigins []string
	// PingInterval is how often the server pings each WebSocket; a peer that
	// sends nothing (not even a pong) for PongTimeout is closed. Defaults
	// 20 s and 60 s.
	PingInterval, PongTimeout time.Duration
	// MaxInFlight bounds the publishes one connection may have awaiting acks;
	// the server stops reading that connection while it is reached. Default 1024.
	MaxInFlight int
	// SendQueue bounds the view messages queued for one connection; a
	// subscriber whose queue is full is resynchronised with a fresh
	// snapshot once it drains. Default 4096.
	SendQueue int
	// WriteTimeout bounds one write to a client; a client that does not
	// read for this long is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// Version is reported in hello.
	Version string
	// Logger receives the server's logs. Default: a null logger.
	Logger hclog.Logger
	// Registry receives the server's metrics; default a new registry.
	Registry *prometheus.Registry
	// Auth authenticates every request but /livez, /readyz and static
	// files. Nil is open mode: every request acts as an admin.
	Auth *auth.Authenticator
	// MaxPastStateReads bounds the reads of past states (GET
	// /v1/views/{name}/state?at=SEQ) computed at a time; each makes a
	// fresh reducer instance and replays history, so more would only
	// share the CPUs and add instances' memory. Others wait their turn.
	// Default runtime.GOMAXPROCS(0).
	MaxPastStateReads int
}

func (c *Config) setDefaults() {
	if c.MaxFrame <= 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 60 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 4096
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.MaxPastStateReads <= 0 {
		c.MaxPastStateReads = runtime.GOMAXPROCS(0)
	}
}

// Server serves the client protocol and the HTTP API.
type Server struct {
	cfg      Config
	logger   hclog.Logger
	upgrader websocket.Upgrader
	mux      *http.ServeMux

	chron    atomic.Pointer[chronicler.Chronicler] // nil while recovering
	draining atomic.Bool

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup

	hubsMu    sync.RWMutex
	hubs      map[string]*hub
	hubCtx    context.Context
	hubCancel context.CancelFunc

	pastReads chan struct{} // one per read of a past state in progress

	connGauge prometheus.Gauge
	// ChronMetrics are the chronicler instruments, registered with the
	// server's registry, to pass in chronicler.Config.
	ChronMetrics *chronicler.Metrics
}

// New creates a Server. It serves /livez at once, /readyz as 503 and every
// API as 503 until SetChronicler is called when recovery is done.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg:    cfg,
		logger: cfg.Logger,
		mux:    http.NewServeMux(),
		conns:  make(map[*conn]struct{}),
		hubs:   make(map[string]*hub),

		pastReads: make(chan struct{}, cfg.MaxPastStateReads),
	}
	s.hubCtx, s.hubCancel = context.WithCancel(context.Background())
	s.upgrader = websocket.Upgrader{
		Subprotocols:      []string{wire.SubprotocolJSON, wire.SubprotocolCBOR},
		CheckOrigin:       s.checkOrigin,
		ReadBufferSize:    4096,
		WriteBufferSize:   4096,
		EnableCompression: false,
	}
	s.connGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodb_websocket_connections", Help: "Open WebSocket connections."})
	cfg.Registry.MustRegister(s.connGauge,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.ChronMetrics = chronicler.NewMetrics(cfg.Registry)

	// Who may call what: public, admin only, or any valid token with the
	// handler checking the scopes (auth.FromContext).
	s.mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.Handle("GET /metrics", s.guard("read the metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	s.mux.Handle("GET /v1/producers/{producer}", s.guard("read a producer's records", http.HandlerFunc(s.handleProducer)))
	s.HandleAuthenticated("GET /v1/ws", http.HandlerFunc(s.handleWS))
	s.HandleAuthenticated("POST /v1/events", http.HandlerFunc(s.handlePublish))
	s.HandleAuthenticated("GET /v1/views", http.HandlerFunc(s.handleViews))
	s.HandleAuthenticated("GET /v1/views/{name}", http.HandlerFunc(s.handleView))
	s.HandleAuthenticated("GET /v1/views/{name}/state", http.HandlerFunc(s.handleViewState))
	return s
}

// AddView makes v available to the API and to subscribers.
func (s *Server) AddView(v *view.View) {
	h := newHub(s, v)
	s.hubsMu.Lock()
	s.hubs[v.Name()] = h
	s.hubsMu.Unlock()
	go h.run(s.hubCtx)
}

func (s *Server) hub(name string) *hub {
	s.hubsMu.RLock()
	defer s.hubsMu.RUnlock()
	return s.hubs[name]
}

// Handle registers an extra handler on the server's mux. Patterns follow
// net/http.ServeMux. Endpoints of the API (paths under /v1/, and /metrics)
// are for admin tokens only, the safe default for a handler that checks no
// scopes itself; other paths (static files, the JavaScript client) are open
// to everyone. Use HandleAuthenticated for an API endpoint that decides per
// scope.
func (s *Server) Handle(pattern string, h http.Handler) {
	if isAPIPattern(pattern) {
		h = s.guard("use "+pattern, h)
	}
	s.mux.Handle(pattern, h)
}

// HandleAuthenticated registers h for any request with a valid token (every
// request in open mode); a request without one gets 401. h decides what the
// principal may do: auth.FromContext(r.Context()) returns it.
func (s *Server) HandleAuthenticated(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.authenticated(h))
}

// isAPIPattern reports whether a ServeMux pattern ("[METHOD ][HOST]/PATH")
// is an API path: /v1/… or /metrics.
func isAPIPattern(pattern string) bool {
	if _, rest, ok := strings.Cut(pattern, " "); ok {
		pattern = strings.TrimSpace(rest)
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		pattern = pattern[i:]
	}
	return pattern == "/v1" || strings.HasPrefix(pattern, "/v1/") || pattern == "/metrics" || strings.HasPrefix(pattern, "/metrics/")
}

// authenticated wraps h: 401 without a valid token, else h runs with the
// principal in its request's context. A request that may change something
// (not GET or HEAD) from a browser origin the host does not allow (the
// WebSocket's rule, checkOrigin) is refused with 403: any page can make a
// browser send one, and in open mode it needs no token.
func (s *Server) authenticated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Auth.Open() && !literalHost(r.Host) {
			s.logger.Warn("request refused: open mode answers only localhost or an IP address", "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
			httpError(w, http.StatusForbidden, wire.Errorf(wire.CodeForbidden, "host name %q is not allowed: without --tokens the host answers only requests to localhost or an IP address (a web page could otherwise reach it through a name it controls, DNS rebinding); use http://127.0.0.1:PORT, or run with --tokens", r.Host))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !s.checkOrigin(r) {
			s.logger.Warn("request refused: origin not allowed", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
			httpError(w, http.StatusForbidden, wire.Errorf(wire.CodeForbidden, "origin %q is not allowed; add it with nodb serve --allow-origin", r.Header.Get("Origin")))
			return
		}
		p, err := s.cfg.Auth.Authenticate(r)
		if err != nil {
			s.refuse(w, r, nil, err)
			return
		}
		h.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), p)))
	})
}

// guard wraps h for admin tokens only; what describes the operation in the
// 403 ("read the metrics").
func (s *Server) guard(what string, h http.Handler) http.Handler {
	return s.authenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.FromContext(r.Context())
		if err := p.CheckAdmin(what); err != nil {
			s.refuse(w, r, p, err)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// refuse answers a request with an authentication (401) or authorisation
// (403) error and logs it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, p *auth.Principal, err error) {
	if p == nil {
		s.logger.Debug("request refused: no valid token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
	} else {
		s.logger.Info("request refused", "token", p.Name, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
	}
	auth.WriteError(w, err)
}

// nobody is the principal of a request that was not authenticated (a
// handler registered without HandleAuthenticated): it may do nothing.
var nobody, _ = auth.NewPrincipal("", "unauthenticated request", nil, auth.Limits{})

// principal returns the request's principal (set by authenticated).
func principal(r *http.Request) *auth.Principal {
	if p := auth.FromContext(r.Context()); p != nil {
		return p
	}
	return nobody
}

// authWire converts an authorisation error to the protocol's error reply.
func authWire(err error) *wire.Error {
	var e *auth.Error
	if errors.As(err, &e) {
		return e.Wire()
	}
	return wire.Errorf(wire.CodeForbidden, "%v", err)
}

// HasView reports whether a view named name is being served.
func (s *Server) HasView(name string) bool { return s.hub(name) != nil }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// SetChronicler marks recovery done: from now on publishes go to c.
func (s *Server) SetChronicler(c *chronicler.Chronicler) { s.chron.Store(c) }

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	c := s.chron.Load()
	switch {
	case s.draining.Load():
		httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "shutting down"))
	case c == nil:
		httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "recovering the event log"))
	case c.Failed() != nil:
		httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "event log failed: %v", c.Failed()))
	default:
		w.Write([]byte("ready\n"))
	}
}

// literalHost reports whether host (a Host header: name or address, and an
// optional port) is "localhost" or an IP address. Only a name can be
// rebound by its owner's DNS to this machine's address, so a host without
// tokens answers these alone: any web page may send requests to it, and
// one served from a rebound name would be of the same origin as the host.
func literalHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range s.cfg.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	return false
}

func httpError(w http.ResponseWriter, status int, e *wire.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	c := s.chron.Load()
	if c == nil || s.draining.Load() {
		httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "the host is not accepting events right now (recovering or shutting down); retry with the same producer and pseq"))
		return
	}
	body, err := readBody(w, r, s.cfg.MaxFrame)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, wire.Errorf(wire.CodeTooLarge, "event body is over the %d-byte limit; send smaller events (the limit is nodb serve --max-frame)", s.cfg.MaxFrame))
			return
		}
		httpError(w, http.StatusBadRequest, wire.Errorf(wire.CodeBadRequest, "reading body: %v", err))
		return
	}
	var ev wire.Event
	if err := wire.DecodeEvent(body, &ev); err != nil {
		var de *wire.DecodeError
		errors.As(err, &de)
		httpError(w, http.StatusBadRequest, wire.Errorf(wire.CodeBadRequest, "%s", de.Message))
		return
	}
	if p := principal(r); !p.CanPublish(ev.Type) {
		s.refuse(w, r, p, p.CheckPublish(ev.Type))
		return
	}
	ack, err := c.Publish(r.Context(), ev)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			status := http.StatusServiceUnavailable
			switch we.Code {
			case wire.CodePSeqGap:
				status = http.StatusConflict
			case wire.CodeTooLarge:
				status = http.StatusRequestEntityTooLarge
			}
			httpError(w, status, we)
			return
		}
		httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, ack)
}

func (s *Server) handleProducer(w http.ResponseWriter, r *http.Request) {
	c := s.chron.Load()
	if c == nil {
		httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "recovering"))
		return
	}
	name := r.PathValue("producer")
	pseq, seq, ok := c.ProducerInfo(name)
	writeJSON(w, http.StatusOK, map[string]any{"producer": name, "known": ok, "last_pseq": pseq, "last_seq": seq})
}

func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
}

// Shutdown stops the server gracefully: no new publishes are read, every
// publish already read gets its ack, then each WebSocket is closed with code
// 1001 (going away). It returns when all connections are closed or ctx ends.
// The caller then closes the chronicler and the log.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.hubCancel(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.ws.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// idleTimeout closes a keep-alive connection that sends no next request
// for this long (a WebSocket is not idle in this sense: it has its own
// keepalive). Without it, anyone could hold connections open for ever.
var idleTimeout = 2 * time.Minute

// Serve accepts connections on l until Shutdown; it returns after the HTTP
// server stopped.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout,
		ErrorLog: s.logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs.SetKeepAlivesEnabled(false)
	shutErr := make(chan error, 1)
	go func() { shutErr <- hs.Shutdown(sctx) }()
	err := s.Shutdown(sctx)
	if e := <-shutErr; err == nil && e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = e
	}
	return err
}
