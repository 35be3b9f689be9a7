// Package plugins runs nodb plugins: WebAssembly modules that speak the guest
// ABI of package abi (see abi/ABI.md) inside wazero's compiler engine.
//
// A Runtime compiles modules (with an on-disk compilation cache), validates
// them against the ABI before any event is reduced, and instantiates them per
// view. An Instance reduces one event at a time into a State that the host
// owns; it enforces a memory cap and a per-event time limit, gives the guest a
// deterministic clock and random source, and re-creates the guest at every
// epoch boundary (abi.EpochSize) so that replaying from a snapshot gives the
// same result as replaying from the start.
//
// Failures are typed: *TrapError (the Instance is unusable; ErrTimeout for a
// time-out), *ReducerError (the reducer rejected the event), *StateError (the
// State failed) and ErrInvalidModule (refused at load).
package plugins

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/nodb-dev/nodb/abi"
)

// Defaults for Config and InstanceConfig.
const (
	// DefaultMaxMemoryPages is 256 MiB of guest memory (4096 pages of 64 KiB).
	DefaultMaxMemoryPages = 4096
	// DefaultEventTimeout bounds one event (and one _initialize).
	DefaultEventTimeout = 2 * time.Second
	// MaxMemoryPagesLimit is the largest memory cap accepted (4 GiB).
	MaxMemoryPagesLimit = 65536
	// DefaultCompileTimeout bounds compiling one module. A 6 MB Go module
	// compiles in a few seconds here; the limit is for modules built to
	// keep the compiler busy (instrument.go refuses the worst shapes
	// before compiling).
	DefaultCompileTimeout = 2 * time.Minute
)

// Config configures a Runtime. The zero value is usable: no on-disk cache, a
// null logger, the default limits.
type Config struct {
	// CacheDir holds wazero's compilation cache; compiled machine code is
	// reused across processes. Empty means an in-memory cache only.
	CacheDir string
	// Logger receives runtime messages and, through InstanceConfig, plugin
	// output. Nil means hclog.NewNullLogger().
	Logger hclog.Logger
	// MaxMemoryPages is the default and the largest memory cap of an
	// instance, in 64 KiB pages. Zero means DefaultMaxMemoryPages.
	MaxMemoryPages uint32
	// EventTimeout is the default time limit of one event. Zero means
	// DefaultEventTimeout.
	EventTimeout time.Duration
	// CompileTimeout bounds compiling one module to machine code; a module
	// that takes longer is refused. Zero means DefaultCompileTimeout. The
	// compiler stops at the next function after the limit, so one
	// function may run past it (instrument.go bounds what one function
	// may cost).
	CompileTimeout time.Duration
}

func (c *Config) setDefaults() error {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.MaxMemoryPages == 0 {
		c.MaxMemoryPages = DefaultMaxMemoryPages
	}
	if c.MaxMemoryPages > MaxMemoryPagesLimit {
		return fmt.Errorf("plugins: MaxMemoryPages %d over the limit of %d", c.MaxMemoryPages, MaxMemoryPagesLimit)
	}
	if c.EventTimeout == 0 {
		c.EventTimeout = DefaultEventTimeout
	}
	if c.EventTimeout < 0 {
		return errors.New("plugins: negative EventTimeout")
	}
	if c.CompileTimeout == 0 {
		c.CompileTimeout = DefaultCompileTimeout
	}
	if c.CompileTimeout < 0 {
		return errors.New("plugins: negative CompileTimeout")
	}
	return nil
}

// Runtime compiles and instantiates plugins. It is safe for concurrent use.
// Close it to release compiled code and every instance.
type Runtime struct {
	cfg   Config
	cache wazero.CompilationCache
	wd    *watchdog

	mu      sync.Mutex
	engines map[uint32]*engine // by memory limit in pages
	closed  bool
}

// engine is one wazero runtime; wazero fixes the memory limit per runtime, so
// there is one engine per distinct limit.
type engine struct {
	r     wazero.Runtime
	limit uint32
}

// NewRuntime creates a Runtime.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugins: compilation cache %s: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	r := &Runtime{cfg: cfg, cache: cache, engines: map[uint32]*engine{}, wd: newWatchdog()}
	if _, err := r.engine(ctx, cfg.MaxMemoryPages); err != nil {
		_ = cache.Close(ctx)
		return nil, err
	}
	return r, nil
}

// engine returns the wazero runtime for a memory limit, creating it (with the
// host modules) on first use.
func (r *Runtime) engine(ctx context.Context, limit uint32) (*engine, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if e := r.engines[limit]; e != nil {
		return e, nil
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(r.cache).
		WithMemoryLimitPages(limit).
		WithCoreFeatures(api.CoreFeaturesV2)
	wr := wazero.NewRuntimeWithConfig(ctx, rc)
	if err := instantiateHostModules(ctx, wr); err != nil {
		_ = wr.Close(ctx)
		return nil, err
	}
	e := &engine{r: wr, limit: limit}
	r.engines[limit] = e
	return e, nil
}

// Close releases every compiled module and instance of the Runtime. Call it
// only once no Reduce is running: it frees the guests' memory, and a guest
// still running on it would fault (stop the views first, as deploy.Manager's
// Stop does).
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	engines := r.engines
	r.engines = nil
	r.mu.Unlock()
	var errs []error
	for _, e := range engines {
		errs = append(errs, e.r.Close(ctx))
	}
	errs = append(errs, r.cache.Close(ctx))
	r.wd.stop()
	return errors.Join(errs...)
}

// Info describes a compiled module.
type Info struct {
	// ABIVersion is the guest ABI version the module was built for.
	ABIVersion int
	// Kind is the plugin kind: "cascade" if the module declared inputs with
	// the input host function during _initialize, else "reducer".
	Kind string
	// Inputs lists the upstream views a cascade declared, in declaration
	// order (the order patches of one seq are delivered in).
	Inputs []string
	// Consumes lists the event types the module declared with consume
	// during _initialize, in declaration order. Nil means every type.
	Consumes []string
	// SHA256 is the hash of the module's bytes.
	SHA256 [32]byte
	// MinMemoryPages is the memory minimum the module declares.
	MinMemoryPages uint32
	// Size is the module's size in bytes.
	Size int
}

// ConsumesType reports whether the module consumes events of type t.
func (in *Info) ConsumesType(t string) bool {
	if in.Consumes == nil {
		return true
	}
	for _, c := range in.Consumes {
		if c == t {
			return true
		}
	}
	return false
}

// Module is a validated, compiled plugin. It is safe for concurrent use;
// instantiate it once per view with NewInstance.
type Module struct {
	rt       *Runtime
	wasm     []byte // instrumented
	info     Info
	consumes typeSet

	mu       sync.Mutex
	compiled map[uint32]wazero.CompiledModule // by engine limit
	live     int                              // instances not closed yet: they instantiate it again at every epoch
	closed   bool                             // Close was called; the compiled code goes with the last instance
}

// Info returns the module's description.
func (m *Module) Info() Info { return m.info }

// Compile validates and compiles a plugin. Validation (ABI.md, "Loading")
// checks the exports, every import against the ABI's host functions and the
// permitted WASI subset, the ABI version marker and the memory minimum, then
// instantiates the module once to run _initialize and collect the event types
// it consumes. Any failure wraps ErrInvalidModule.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	e, err := r.engine(ctx, r.cfg.MaxMemoryPages)
	if err != nil {
		return nil, err
	}
	size := len(wasm)
	sum := sha256.Sum256(wasm)
	wasm, minPages, err := instrument(wasm)
	if err != nil {
		return nil, errInvalid("decode", err)
	}
	if minPages > r.cfg.MaxMemoryPages {
		return nil, errInvalid(fmt.Sprintf("memory minimum of %d pages is over the cap of %d pages", minPages, r.cfg.MaxMemoryPages), nil)
	}
	cm, err := r.compile(ctx, e, wasm)
	if err != nil {
		return nil, err
	}
	minPages, err = validate(cm, r.cfg.MaxMemoryPages)
	if err != nil {
		_ = cm.Close(ctx)
		return nil, err
	}
	m := &Module{
		rt:       r,
		wasm:     wasm,
		compiled: map[uint32]wazero.CompiledModule{e.limit: cm},
		info: Info{
			ABIVersion:     abi.Version,
			Kind:           "reducer",
			SHA256:         sum,
			MinMemoryPages: minPages,
			Size:           size,
		},
	}
	// Probe: run _initialize once to learn what the module consumes.
	inst, err := m.newInstance(ctx, InstanceConfig{View: "", Logger: r.cfg.Logger.Named("probe")}, true)
	if err != nil {
		_ = cm.Close(ctx)
		return nil, err
	}
	m.info.Consumes = inst.declared
	m.info.Inputs = inst.inputs
	_ = inst.Close(ctx)
	if len(m.info.Inputs) > 0 {
		// A cascade receives its inputs' patches, whatever it consumes.
		m.info.Kind = "cascade"
		m.info.Consumes = []string{abi.TypePatch}
	}
	if slices.Contains(m.info.Consumes, abi.ConsumeAll) {
		m.info.Consumes = nil
	}
	m.consumes = newTypeSet(m.info.Consumes)
	return m, nil
}

// Consumes reports whether the module consumes events of type t: what
// Info().ConsumesType answers, made for a lookup per event (no hashing for
// the usual few types).
func (m *Module) Consumes(t string) bool { return m.consumes.has(t) }

// typeSet is a set of event types looked up once per event. Up to
// typeSetList types are a list compared in order (the lengths first, then
// the bytes: cheaper than hashing the type for a map); more go in a map.
type typeSet struct {
	all  bool // every type
	list []string
	m    map[string]struct{}
}

const typeSetList = 8

// newTypeSet returns the set of types; nil means every type.
func newTypeSet(types []string) typeSet {
	switch {
	case types == nil:
		return typeSet{all: true}
	case len(types) <= typeSetList:
		return typeSet{list: slices.Clone(types)}
	}
	s := typeSet{m: make(map[string]struct{}, len(types))}
	for _, t := range types {
		s.m[t] = struct{}{}
	}
	return s
}

// has reports whether t is in the set.
func (s *typeSet) has(t string) bool {
	if s.all {
		return true
	}
	if s.m != nil {
		_, ok := s.m[t]
		return ok
	}
	for _, c := range s.list {
		if c == t {
			return true
		}
	}
	return false
}

// compile compiles an instrumented module in e, on every core and within
// the CompileTimeout. wazero checks the context only when it compiles with
// more than one worker, between functions.
func (r *Runtime) compile(ctx context.Context, e *engine, wasm []byte) (wazero.CompiledModule, error) {
	cctx, cancel := context.WithTimeout(experimental.WithCompilationWorkers(ctx, max(2, runtime.GOMAXPROCS(0))), r.cfg.CompileTimeout)
	defer cancel()
	cm, err := e.r.CompileModule(cctx, wasm)
	switch {
	case err == nil:
		return cm, nil
	case ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded):
		return nil, errInvalid(fmt.Sprintf("compiling it took over %s, the host's limit; split or simplify its largest functions", r.cfg.CompileTimeout), nil)
	}
	return nil, errInvalid("compile", err)
}

// compiledFor returns the module compiled in the engine for limit, for a
// new instance, which counts as live until it calls release.
func (m *Module) compiledFor(ctx context.Context, limit uint32) (*engine, wazero.CompiledModule, error) {
	e, err := m.rt.engine(ctx, limit)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, errors.New("plugins: the module was closed; compile it again")
	}
	if cm := m.compiled[limit]; cm != nil {
		m.live++
		return e, cm, nil
	}
	cm, err := m.rt.compile(ctx, e, m.wasm)
	if err != nil {
		return nil, nil, err
	}
	m.compiled[limit] = cm
	m.live++
	return e, cm, nil
}

// release ends a live instance's use of the module (see compiledFor).
func (m *Module) release(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live--; m.live == 0 && m.closed {
		m.closeLocked(ctx)
	}
}

// Close releases the module's compiled code once its instances are closed:
// they keep working until then (each instantiates it again at every epoch
// boundary). No new instance can be made.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.live > 0 {
		return nil
	}
	return m.closeLocked(ctx)
}

func (m *Module) closeLocked(ctx context.Context) error {
	var errs []error
	for k, cm := range m.compiled {
		errs = append(errs, cm.Close(ctx))
		delete(m.compiled, k)
	}
	return errors.Join(errs...)
}
