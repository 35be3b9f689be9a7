// Package deploy runs a host's reducer views from the plugin store and
// serves the plugin API: upload, list and delete versions, activate one in a
// view (shadow replay, compare, swap per policy), confirm, roll back, and dry
// runs (the compatibility report). Long operations stream NDJSON: progress
// lines {"type":"progress","seq","head","events_per_s","eta_s"} and a final
// {"type":"report",…} (or {"type":"error",…}).
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/host/cascade"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/plugins"
	"github.com/nodb-dev/nodb/plugins/store"
)

// Config configures a Manager.
type Config struct {
	Store   *store.Store
	Runtime *plugins.Runtime
	Log     eventlog.Log
	// DataDir holds the views' snapshots (DataDir/snapshots).
	DataDir string
	// SnapshotEvery is passed to each view.
	SnapshotEvery uint64
	// AddView makes a new view available to the API and subscribers.
	AddView func(*view.View)
	// RecordSwap, when set, appends a control event recording a completed
	// swap to the history (who can audit what ran when). The event is also
	// what carries the swap's diff to subscribers: a view folds the diff into
	// the update of the first event after the swap.
	RecordSwap func(ctx context.Context, view, from, to string) error
	// Upstreams maps a cascade input's name to a view on another nodb host
	// (cascade.ParseRemote's URL); inputs not listed are views of this host.
	Upstreams map[string]string
	// ViewExists, when set, reports whether the host serves a view of that
	// name that this manager may not run (another engine's); the plugin
	// API then treats it as an existing view of unknown kind, which only
	// admin tokens may replace.
	ViewExists func(name string) bool
	Logger     hclog.Logger
}

// Manager owns a host's reducer views and their versions.
type Manager struct {
	cfg    Config
	logger hclog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Operations (activations, rollbacks, confirmations, dry runs) in
	// progress: Shutdown cancels them through opsCtx (cause
	// ErrShuttingDown) and waits for them before modules are closed.
	opsCtx    context.Context
	opsCancel context.CancelFunc
	ops       sync.WaitGroup
	draining  bool // under mu: no new operation starts

	mu       sync.Mutex
	views    map[string]*entry
	starting map[string]bool // views an activation is starting
	// modules are the compiled versions, by sha256, kept while a version
	// is in use (using or holds) and closed when it no longer is: each is
	// megabytes of machine code, and every deploy compiles one.
	modules map[string]*plugins.Module
	// using counts, by sha256, the activations, confirmations and manual
	// swaps awaiting confirmation that use a version: Delete refuses it.
	using map[string]int
	// holds counts the other uses of a compiled version: each running
	// view holds the version it runs, and a factory holds its version while
	// it makes an instance (an instance keeps working after its module is
	// closed; only new instances need the module).
	holds map[string]int
}

type entry struct {
	v       *view.View
	sha     string           // the version the view runs (held, see Manager.holds)
	cas     *cascade.Cascade // nil for reducer views
	busy    bool
	pending *pending // a manual swap awaiting confirmation
}

type pending struct {
	man    store.Manifest
	red    view.Reducer
	replay view.ReplayResult
	report Report
}

// New creates a Manager.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	m := &Manager{cfg: cfg, logger: cfg.Logger, views: map[string]*entry{}, starting: map[string]bool{}, modules: map[string]*plugins.Module{}, using: map[string]int{}, holds: map[string]int{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.opsCtx, m.opsCancel = context.WithCancel(context.Background())
	return m
}

// ErrShuttingDown ends the activations, rollbacks, confirmations and dry
// runs that were in progress when the host began to shut down, and refuses
// new ones (503 unavailable).
var ErrShuttingDown = errors.New("deploy: the host is shutting down")

// begin starts an operation: its context is ctx, also cancelled (with
// cause ErrShuttingDown) by Shutdown, which waits for done.
func (m *Manager) begin(ctx context.Context) (context.Context, func(), error) {
	m.mu.Lock()
	if m.draining {
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w; try again once it is back", ErrShuttingDown)
	}
	m.ops.Add(1)
	m.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(m.opsCtx, func() { cancel(ErrShuttingDown) })
	return ctx, func() {
		stop()
		cancel(nil)
		m.ops.Done()
	}, nil
}

// shutdownError returns the error of an operation (what) that ctx, begun
// by begin, ended because the host is shutting down; nil if it did not.
func shutdownError(ctx context.Context, what string) error {
	if errors.Is(context.Cause(ctx), ErrShuttingDown) {
		return fmt.Errorf("%w: %s was abandoned and the live view is untouched; do it again once the host is back", ErrShuttingDown, what)
	}
	return nil
}

// Shutdown cancels the activations, rollbacks, confirmations and dry runs
// in progress (each answers ErrShuttingDown and leaves its view as it
// was), refuses new ones and waits until they have ended. The views keep
// running until Stop. Call it when the host begins to shut down, at the
// same time as the HTTP server's shutdown, which waits for those requests.
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.draining = true
	m.mu.Unlock()
	m.opsCancel()
	m.ops.Wait()
}

// Store returns the manager's plugin store.
func (m *Manager) Store() *store.Store { return m.cfg.Store }

// module returns version sha's manifest and compiled module, compiling it
// on first use. The caller must use or hold sha (see Manager.holds) while it
// uses the module, so that it is not closed under it.
func (m *Manager) module(ctx context.Context, sha string) (store.Manifest, *plugins.Module, error) {
	man, wasm, err := m.cfg.Store.Get(sha)
	if err != nil {
		return man, nil, err
	}
	m.mu.Lock()
	mod := m.modules[sha]
	m.mu.Unlock()
	if mod != nil {
		return man, mod, nil
	}
	mod, err = m.cfg.Runtime.Compile(ctx, wasm)
	if err != nil {
		return man, nil, err
	}
	m.mu.Lock()
	if old := m.modules[sha]; old != nil {
		mod.Close(ctx)
		mod = old
	} else {
		m.modules[sha] = mod
	}
	m.mu.Unlock()
	return man, mod, nil
}

// factory returns a Factory of the version sha for viewName. A cascade's
// reducers read the feed of the running cascade view (cas).
func (m *Manager) factory(viewName, sha string, cas *cascade.Cascade) view.Factory {
	return func(ctx context.Context, startSeq uint64) (view.Reducer, error) {
		m.hold(sha) // until the instance is made; it outlives the module
		defer m.unhold(sha)
		man, mod, err := m.module(ctx, sha)
		if err != nil {
			return nil, err
		}
		ic := m.instanceConfig(viewName, man)
		ic.StartSeq = startSeq
		if man.Kind == "cascade" {
			if cas == nil {
				return nil, fmt.Errorf("version %s is a cascade; view %q is a reducer view (deploy the cascade under its own name)", sha[:12], viewName)
			}
			return cas.Factory(mod, ic)(ctx, startSeq)
		}
		if cas != nil {
			return nil, fmt.Errorf("version %s is a reducer; view %q is a cascade", sha[:12], viewName)
		}
		return view.NewWasmReducer(ctx, mod, viewName, ic)
	}
}

func (m *Manager) instanceConfig(viewName string, man store.Manifest) plugins.InstanceConfig {
	return plugins.InstanceConfig{
		MemoryLimitPages: man.Limits.MemoryPages,
		EventTimeout:     time.Duration(man.Limits.EventTimeoutMS) * time.Millisecond,
		Logger:           m.logger.Named("plugin." + viewName),
	}
}

// lookup returns the running view name, or nil.
func (m *Manager) lookup(name string) *view.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.views[name]; e != nil {
		return e.v
	}
	return nil
}

// Upstream returns the remote URL of a cascade's input (from its manifest,
// else the host's --upstream flags), or "" for a view of this host.
func (m *Manager) Upstream(man store.Manifest, input string) string {
	if u, ok := man.Upstreams[input]; ok {
		return u
	}
	return m.cfg.Upstreams[input]
}

// inputs resolves a cascade's declared inputs: remote if its manifest or the
// host's Upstreams name them, else views of this host, which must be
// running.
func (m *Manager) inputs(viewName string, man store.Manifest) ([]cascade.Input, error) {
	var out []cascade.Input
	for _, name := range man.Inputs {
		if u := m.Upstream(man, name); u != "" {
			in, err := cascade.ParseRemote(name, u, m.logger.Named("upstream."+name))
			if err != nil {
				return nil, err
			}
			out = append(out, in)
			continue
		}
		if name == viewName {
			return nil, fmt.Errorf("cascade %q cannot read itself", viewName)
		}
		if m.lookup(name) == nil {
			return nil, fmt.Errorf("cascade %q reads view %q, which does not run on this host: deploy it first, or give nodb serve --upstream %s=ws://HOST:PORT for a view on another host", viewName, name, name)
		}
		out = append(out, &cascade.LocalInput{InputName: name, Lookup: func() *view.View { return m.lookup(name) }})
	}
	return out, nil
}

// Boot stores the command-line plugin of a view and returns the version the
// view should run: the file's, unless the same file was given at the last
// start and another version was deployed since.
func (m *Manager) Boot(ctx context.Context, name string, wasm []byte) (string, error) {
	man, _, err := m.cfg.Store.Put(ctx, wasm, store.Manifest{Name: name})
	if err != nil {
		return "", err
	}
	if a, ok := m.cfg.Store.Active(name); ok && a.Boot == man.SHA256 {
		return a.SHA256, nil
	}
	if err := m.cfg.Store.SetActive(name, man.SHA256, false, man.SHA256); err != nil {
		return "", err
	}
	return man.SHA256, nil
}

// CheckViewName returns nil if name may name a view: letters, digits, '-',
// '_' and '.', but not "." or "..". The name is a directory under
// DATA/snapshots, so it must be one file name that stays there.
func CheckViewName(name string) error {
	ok := name != "" && name != "." && name != ".."
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("view name %q may hold only letters, digits, '-', '_' and '.', and may not be . or ..", name)
	}
	return nil
}

// StartView builds view name with version sha (loading its snapshot) and
// starts applying the log to it. A cascade version starts a cascade view
// over its inputs instead.
func (m *Manager) StartView(ctx context.Context, name, sha string) (*view.View, error) {
	if err := CheckViewName(name); err != nil {
		return nil, err
	}
	m.hold(sha) // the view's, from now on; released if it does not start
	started := false
	defer func() {
		if !started {
			m.unhold(sha)
		}
	}()
	man, mod, err := m.module(ctx, sha)
	if err != nil {
		return nil, err
	}
	var (
		v   *view.View
		cas *cascade.Cascade
	)
	if man.Kind == "cascade" {
		ins, err := m.inputs(name, man)
		if err != nil {
			return nil, err
		}
		if cas, err = cascade.New(ctx, cascade.Config{
			Name:     name,
			Module:   mod,
			Inputs:   ins,
			Instance: m.instanceConfig(name, man),
			Logger:   m.logger.Named("view." + name),
		}); err != nil {
			return nil, err
		}
		v = cas.View
	} else {
		f := m.factory(name, sha, nil)
		red, err := f(ctx, 0)
		if err != nil {
			return nil, err
		}
		v, err = view.New(view.Config{
			Name:          name,
			Reducer:       red,
			Factory:       f,
			Log:           m.cfg.Log,
			SnapshotDir:   filepath.Join(m.cfg.DataDir, "snapshots"),
			SnapshotEvery: m.cfg.SnapshotEvery,
			Logger:        m.logger.Named("view." + name),
		})
		if err != nil {
			red.Close()
			return nil, err
		}
	}
	m.mu.Lock()
	m.views[name] = &entry{v: v, cas: cas, sha: sha}
	m.mu.Unlock()
	started = true
	if m.cfg.AddView != nil {
		m.cfg.AddView(v)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		var err error
		if cas != nil {
			err = cas.Run(m.ctx)
		} else {
			err = v.Run(m.ctx)
		}
		if err != nil {
			m.logger.Error("view stopped", "view", name, "error", err)
		}
	}()
	m.logger.Info("view started", "view", name, "kind", man.Kind, "plugin", sha[:16], "from_seq", v.Status().Seq)
	return v, nil
}

// Kind returns the kind of view name ("reducer" or "cascade"), "" if there
// is no such view.
func (m *Manager) Kind(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e := m.views[name]; {
	case e == nil:
		return ""
	case e.cas != nil:
		return "cascade"
	}
	return "reducer"
}

// source is what view e reads: the log, or its cascade's feed.
func (m *Manager) source(e *entry) view.Source {
	if e.cas != nil {
		return e.cas.Feed
	}
	return m.cfg.Log
}

// Views returns the running views.
func (m *Manager) Views() []*view.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*view.View, 0, len(m.views))
	for _, e := range m.views {
		out = append(out, e.v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// Stop ends the operations in progress (Shutdown), then stops every view,
// snapshots it and releases the compiled modules.
func (m *Manager) Stop() {
	m.Shutdown()
	m.cancel()
	m.wg.Wait()
	for _, v := range m.Views() {
		if _, err := v.Snapshot(); err != nil {
			v.FlushSnapshots()
		}
	}
	m.mu.Lock()
	for _, e := range m.views {
		if e.pending != nil {
			e.pending.red.Close()
		}
	}
	for _, mod := range m.modules {
		mod.Close(context.Background())
	}
	m.mu.Unlock()
}

// Report is the outcome of an activation, a confirmation or a rollback.
type Report struct {
	View   string `json:"view"`
	SHA256 string `json:"sha256"`
	Policy string `json:"policy"`
	// Outcome is "swapped", "refused", "awaiting-confirm", "failed" or
	// "started" (a new view).
	Outcome string `json:"outcome"`
	// ReplayMS is the shadow replay's time; TotalMS from the request to the
	// outcome.
	ReplayMS int64  `json:"replay_ms"`
	TotalMS  int64  `json:"total_ms"`
	Events   uint64 `json:"events"`
	// Swap is the comparison with the live view (and the swap's figures).
	Swap *view.SwapReport `json:"swap,omitempty"`
	// Compare locates the first difference when the policy refused.
	Compare *view.CompareReport `json:"compare,omitempty"`
	Error   string              `json:"error,omitempty"`
}

// use marks version sha as in use (see Delete), if the store still has
// it: Delete and use exclude each other, so a version is either deleted
// before an activation starts using it (which then fails) or kept until
// the activation ends.
func (m *Manager) use(sha string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.cfg.Store.Resolve("", sha); err != nil {
		return err
	}
	m.using[sha]++
	return nil
}

// unuse ends one use of version sha.
func (m *Manager) unuse(sha string) { m.drop(m.using, sha) }

// hold keeps version sha's compiled module (see Manager.holds).
func (m *Manager) hold(sha string) {
	m.mu.Lock()
	m.holds[sha]++
	m.mu.Unlock()
}

// unhold ends one hold of version sha.
func (m *Manager) unhold(sha string) { m.drop(m.holds, sha) }

// swapped records that view e now runs version sha: the view's hold moves
// from its old version to sha.
func (m *Manager) swapped(e *entry, sha string) {
	m.mu.Lock()
	old := e.sha
	e.sha = sha
	m.holds[sha]++
	m.mu.Unlock()
	m.drop(m.holds, old)
}

// drop ends one use or hold of version sha (counts is m.using or
// m.holds) and closes its compiled module if that was the last.
func (m *Manager) drop(counts map[string]int, sha string) {
	m.mu.Lock()
	if counts[sha]--; counts[sha] <= 0 {
		delete(counts, sha)
	}
	mod := m.unusedLocked(sha)
	m.mu.Unlock()
	if mod != nil {
		mod.Close(context.Background())
	}
}

// unusedLocked forgets version sha's compiled module and returns it (to be
// closed) when nothing uses or holds sha any more; else nil.
func (m *Manager) unusedLocked(sha string) *plugins.Module {
	if m.using[sha] > 0 || m.holds[sha] > 0 {
		return nil
	}
	mod := m.modules[sha]
	delete(m.modules, sha)
	return mod
}

// Delete removes version sha from the store. It refuses a version a view
// runs (the store's rule), one an activation, confirmation or rollback is
// using, and one a manual swap awaits confirmation with: deleting it under
// them made the swap go through with a version the store could no longer
// record as active, so the host ran one version while its store named
// another, and a restart silently went back to the old one.
func (m *Manager) Delete(sha string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.using[sha] > 0 {
		return busyError(fmt.Sprintf("version %s is being activated, or a manual swap to it awaits confirmation; wait for the activation, or confirm it or activate another version, then delete it", sha[:min(12, len(sha))]))
	}
	return m.cfg.Store.Delete(sha)
}

// busyError is a refusal answered like errBusy (409 busy) with its own
// message.
type busyError string

func (e busyError) Error() string        { return string(e) }
func (e busyError) Is(target error) bool { return target == errBusy }

// noViewError is the refusal of an operation on a view that does not run
// (404 not_found).
type noViewError string

func (e noViewError) Error() string {
	return fmt.Sprintf("no view named %q; GET /v1/views lists the views", string(e))
}

// errBusy is returned when a view already has a swap in progress.
var errBusy = errors.New("a swap of this view is already in progress; wait for it")

func (m *Manager) acquire(name string) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.views[name]
	if m.starting[name] {
		return nil, errBusy // until the activation starting it has recorded it
	}
	if e == nil {
		return nil, nil
	}
	if e.busy {
		return nil, errBusy
	}
	e.busy = true
	return e, nil
}

func (m *Manager) release(e *entry) {
	m.mu.Lock()
	e.busy = false
	m.mu.Unlock()
}

// Activate makes version sha the active reducer of view name with policy
// (empty: the manifest's). A view that does not exist yet is started. For a
// running view, the new version replays the whole log in the background
// (progress goes to prog), catches up, is compared with the live view and
// swapped in per policy; a failure leaves the live view untouched.
func (m *Manager) Activate(ctx context.Context, name, sha, policy string, rollback bool, prog func(view.Progress)) (Report, error) {
	return m.activate(ctx, name, sha, policy, rollback, prog, nil)
}

// checkPolicy returns nil for a swap policy Activate knows.
func checkPolicy(policy string) error {
	switch policy {
	case store.PolicyAlways, store.PolicyIfIdentical, store.PolicyManual:
		return nil
	}
	return fmt.Errorf("policy %q is unknown; use always, if-identical or manual", policy)
}

// authorizer decides, with the view locked against other swaps, whether
// the version man may become active; an error refuses and changes nothing.
type authorizer func(man store.Manifest) error

func (m *Manager) activate(ctx context.Context, name, sha, policy string, rollback bool, prog func(view.Progress), authz authorizer) (Report, error) {
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return Report{}, err
	}
	defer done()
	rep, err := m.activateOp(ctx, name, sha, policy, rollback, prog, authz)
	if rep.Outcome == "failed" || err != nil {
		what := fmt.Sprintf("the activation of version %s in view %q", sha[:min(12, len(sha))], name)
		if rollback {
			what = fmt.Sprintf("the rollback of view %q", name)
		}
		if serr := shutdownError(ctx, what); serr != nil {
			return rep, serr
		}
	}
	return rep, err
}

func (m *Manager) activateOp(ctx context.Context, name, sha, policy string, rollback bool, prog func(view.Progress), authz authorizer) (Report, error) {
	start := time.Now()
	if err := m.use(sha); err != nil {
		return Report{}, err
	}
	pendingKeepsUse := false // a manual swap awaiting confirmation keeps this use
	defer func() {
		if !pendingKeepsUse {
			m.unuse(sha)
		}
	}()
	man, _, err := m.module(ctx, sha)
	if err != nil {
		return Report{}, err
	}
	if policy == "" {
		policy = man.SwapPolicy
	}
	rep := Report{View: name, SHA256: sha, Policy: policy}
	if err := checkPolicy(policy); err != nil {
		return rep, err
	}
	e, err := m.acquire(name)
	if err != nil {
		return rep, err
	}
	if authz != nil {
		if err := authz(man); err != nil {
			if e != nil {
				m.release(e)
			}
			return rep, err
		}
	}
	if e == nil {
		// Only one activation starts a new view; another one at the same
		// time would start a second view under the name.
		m.mu.Lock()
		claimed := m.views[name] == nil && !m.starting[name]
		if claimed {
			m.starting[name] = true
		}
		m.mu.Unlock()
		if !claimed {
			return rep, errBusy
		}
		defer func() {
			m.mu.Lock()
			delete(m.starting, name)
			m.mu.Unlock()
		}()
		if _, err := m.StartView(ctx, name, sha); err != nil {
			return rep, err
		}
		rep.Outcome = "started"
		return rep, m.cfg.Store.SetActive(name, sha, rollback, "")
	}
	defer m.release(e)
	if e.pending != nil {
		e.pending.red.Close()
		m.unuse(e.pending.man.SHA256)
		e.pending = nil
	}
	f := m.factory(name, sha, e.cas)
	red, err := f(ctx, 0)
	if err != nil {
		return rep, err
	}
	res, err := view.Replay(ctx, view.ReplayConfig{Log: m.source(e), Reducer: red, Progress: prog})
	rep.ReplayMS, rep.Events = res.Elapsed.Milliseconds(), res.Events
	if err != nil {
		red.Close()
		rep.Outcome, rep.Error = "failed", "shadow replay abandoned, the live view is untouched: "+err.Error()
		rep.TotalMS = time.Since(start).Milliseconds()
		return rep, nil
	}
	if policy == store.PolicyManual {
		old, err := e.v.StateAt(ctx, res.Seq)
		if err != nil {
			red.Close()
			return rep, err
		}
		sr := view.SwapReport{Seq: res.Seq, OldHash: old.Hash().String(), NewHash: res.Root.Hash().String(), OldPlugin: e.v.Hash(), NewPlugin: sha}
		sr.Identical = sr.OldHash == sr.NewHash
		if !sr.Identical {
			sr.Changes = view.Changes(old, res.Root, 20)
		}
		rep.Swap, rep.Outcome = &sr, "awaiting-confirm"
		rep.TotalMS = time.Since(start).Milliseconds()
		pendingKeepsUse = true // ended by confirm or a later activation
		e.pending = &pending{man: man, red: red, replay: res, report: rep}
		return rep, nil
	}
	sr, err := e.v.Swap(ctx, view.SwapRequest{Reducer: red, Factory: f, Replay: res, IfIdentical: policy == store.PolicyIfIdentical})
	rep.Swap = &sr
	rep.TotalMS = time.Since(start).Milliseconds()
	switch {
	case errors.Is(err, view.ErrSwapRefused):
		rep.Outcome, rep.Error = "refused", err.Error()
		if cr, cerr := m.compare(ctx, e, name, e.v.Hash(), sha, sr.Seq, prog); cerr == nil {
			rep.Compare = &cr
		}
		return rep, nil
	case err != nil:
		rep.Outcome, rep.Error = "failed", "the live view is untouched: "+err.Error()
		return rep, nil
	}
	rep.Outcome = "swapped"
	m.swapped(e, sha)
	m.recordSwap(ctx, name, sr.OldPlugin, sha)
	if err := m.cfg.Store.SetActive(name, sha, rollback, ""); err != nil {
		return rep, fmt.Errorf("swapped, but recording the active version failed: %w", err)
	}
	return rep, nil
}

// Confirm performs a manual swap that is waiting.
func (m *Manager) Confirm(ctx context.Context, name string) (Report, error) {
	return m.confirm(ctx, name, nil)
}

func (m *Manager) confirm(ctx context.Context, name string, authz authorizer) (Report, error) {
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return Report{}, err
	}
	defer done()
	rep, err := m.confirmOp(ctx, name, authz)
	if rep.Outcome == "failed" || err != nil {
		if serr := shutdownError(ctx, fmt.Sprintf("the confirmation of view %q's swap", name)); serr != nil {
			return rep, serr
		}
	}
	return rep, err
}

func (m *Manager) confirmOp(ctx context.Context, name string, authz authorizer) (Report, error) {
	e, err := m.acquire(name)
	if err != nil {
		return Report{}, err
	}
	if e == nil {
		return Report{}, noViewError(name)
	}
	defer m.release(e)
	p := e.pending
	if p == nil {
		return Report{}, fmt.Errorf("view %q has no swap awaiting confirmation; activate a version with policy manual first", name)
	}
	if authz != nil {
		if err := authz(p.man); err != nil {
			return Report{}, err
		}
	}
	e.pending = nil
	defer m.unuse(p.man.SHA256) // the pending swap's use, kept through the swap
	start := time.Now()
	rep := p.report
	sr, err := e.v.Swap(ctx, view.SwapRequest{Reducer: p.red, Factory: m.factory(name, p.man.SHA256, e.cas), Replay: p.replay})
	rep.Swap = &sr
	rep.TotalMS += time.Since(start).Milliseconds()
	if err != nil {
		rep.Outcome, rep.Error = "failed", err.Error()
		return rep, nil
	}
	rep.Outcome = "swapped"
	m.swapped(e, p.man.SHA256)
	m.recordSwap(ctx, name, sr.OldPlugin, p.man.SHA256)
	return rep, m.cfg.Store.SetActive(name, p.man.SHA256, false, "")
}

func (m *Manager) recordSwap(ctx context.Context, name, from, to string) {
	if m.cfg.RecordSwap == nil {
		return
	}
	if err := m.cfg.RecordSwap(ctx, name, from, to); err != nil {
		m.logger.Warn("could not record the swap in the history; subscribers get the swap's patch with the next event", "view", name, "error", err)
	}
}

// Rollback activates the version that was active before the current one,
// with policy always.
func (m *Manager) Rollback(ctx context.Context, name string, prog func(view.Progress)) (Report, error) {
	return m.rollback(ctx, name, prog, nil)
}

func (m *Manager) rollback(ctx context.Context, name string, prog func(view.Progress), authz authorizer) (Report, error) {
	a, ok := m.cfg.Store.Active(name)
	if !ok || len(a.History) == 0 {
		return Report{}, fmt.Errorf("view %q has no previous version to roll back to", name)
	}
	return m.activate(ctx, name, a.History[len(a.History)-1], store.PolicyAlways, true, prog, authz)
}

// pendingManifest returns the version of view name's manual swap awaiting
// confirmation, if any.
func (m *Manager) pendingManifest(name string) (store.Manifest, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.views[name]; e != nil && e.pending != nil {
		return e.pending.man, true
	}
	return store.Manifest{}, false
}

// viewKind returns the kind of the version active in view name ("" when
// it cannot be told) and whether the view exists, in this manager or (per
// Config.ViewExists) elsewhere on the host.
func (m *Manager) viewKind(name string) (string, bool) {
	if a, ok := m.cfg.Store.Active(name); ok {
		man, err := m.cfg.Store.Resolve("", a.SHA256)
		if err != nil {
			return "", true
		}
		if man.Kind == "" {
			return "reducer", true
		}
		return man.Kind, true
	}
	m.mu.Lock()
	_, ok := m.views[name]
	m.mu.Unlock()
	if ok || (m.cfg.ViewExists != nil && m.cfg.ViewExists(name)) {
		return "", true
	}
	return "", false
}

// compare runs a dry run of version newSHA against oldSHA for view e.
func (m *Manager) compare(ctx context.Context, e *entry, name, oldSHA, newSHA string, to uint64, prog func(view.Progress)) (view.CompareReport, error) {
	oldR, err := m.factory(name, oldSHA, e.cas)(ctx, 0)
	if err != nil {
		return view.CompareReport{}, err
	}
	defer oldR.Close()
	newR, err := m.factory(name, newSHA, e.cas)(ctx, 0)
	if err != nil {
		return view.CompareReport{}, err
	}
	defer newR.Close()
	return view.Compare(ctx, view.CompareConfig{Log: m.source(e), Old: oldR, New: newR, To: to, Progress: prog})
}

// DryRun compares a candidate module (validated, not stored) with view
// name's active version over the whole log (for a cascade: over its inputs
// from scratch, up to the view's position).
func (m *Manager) DryRun(ctx context.Context, name string, wasm []byte, prog func(view.Progress)) (view.CompareReport, error) {
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return view.CompareReport{}, err
	}
	defer done()
	rep, err := m.dryRun(ctx, name, wasm, prog)
	if err != nil {
		if serr := shutdownError(ctx, fmt.Sprintf("the dry run in view %q", name)); serr != nil {
			return rep, serr
		}
	}
	return rep, err
}

func (m *Manager) dryRun(ctx context.Context, name string, wasm []byte, prog func(view.Progress)) (view.CompareReport, error) {
	m.mu.Lock()
	e := m.views[name]
	m.mu.Unlock()
	if e == nil {
		return view.CompareReport{}, fmt.Errorf("no view named %q", name)
	}
	man, err := m.cfg.Store.Validate(ctx, wasm, store.Manifest{Name: name})
	if err != nil {
		return view.CompareReport{}, err
	}
	if (man.Kind == "cascade") != (e.cas != nil) {
		return view.CompareReport{}, &store.RejectError{Reason: fmt.Sprintf("the candidate is a %s and view %q is a %s", man.Kind, name, m.Kind(name))}
	}
	mod, err := m.cfg.Runtime.Compile(ctx, wasm)
	if err != nil {
		return view.CompareReport{}, err
	}
	defer mod.Close(ctx)
	oldR, err := m.factory(name, e.v.Hash(), e.cas)(ctx, 0)
	if err != nil {
		return view.CompareReport{}, err
	}
	defer oldR.Close()
	ic := m.instanceConfig(name, man)
	ic.Logger = m.logger.Named("dry-run." + name)
	var newR view.Reducer
	if e.cas != nil {
		newR, err = e.cas.Factory(mod, ic)(ctx, 0)
	} else {
		newR, err = view.NewWasmReducer(ctx, mod, name, ic)
	}
	if err != nil {
		return view.CompareReport{}, err
	}
	defer newR.Close()
	_, head := e.v.State()
	return view.Compare(ctx, view.CompareConfig{Log: m.source(e), Old: oldR, New: newR, To: head, Progress: prog})
}

// ndjson streams progress lines and a final object.
type ndjson struct {
	w   http.ResponseWriter
	enc *json.Encoder
	mu  sync.Mutex
}

func newNDJSON(w http.ResponseWriter) *ndjson {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush() // the client learns at once that the operation began
	}
	return &ndjson{w: w, enc: json.NewEncoder(w)}
}

func (n *ndjson) send(v any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.enc.Encode(v)
	if f, ok := n.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (n *ndjson) progress(p view.Progress) {
	n.send(struct {
		Type string `json:"type"`
		view.Progress
	}{"progress", p})
}
