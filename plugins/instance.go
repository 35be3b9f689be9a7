package plugins

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nodb-dev/nodb/abi"
)

// Event is one event as the plugin runtime sees it (the fields of an
// eventlog.Record that reducers see).
type Event struct {
	Seq      uint64
	Time     int64 // Unix nanoseconds; the guest's clock during the event
	Producer string
	PSeq     uint64
	Type     string
	Payload  []byte // JSON; empty means null
}

// State is the view state a reducer reads and changes, owned by the host.
// Paths are JSON Pointers (RFC 6901), already validated by the host
// (abi.ValidatePath); values are CBOR within the JSON data model, already
// validated (abi.ValidateValue).
//
// To make the guest see a specific ABI status, return an abi.Status (or wrap
// one): abi.StatusInvalidPath, abi.StatusTypeMismatch, abi.StatusTooLarge,
// abi.StatusNotFound. Any other error fails the event with a *StateError.
// Calls come from the goroutine calling Reduce, one at a time.
type State interface {
	// Get returns the CBOR encoding of the value at path, ok=false if there is
	// none. The host copies the bytes out before its next call into State and
	// never modifies them.
	Get(path string) (value []byte, ok bool, err error)
	// Has reports whether there is a value at path (state_has): without
	// encoding it, so that it costs the same whatever the value's size.
	Has(path string) (ok bool, err error)
	// Set stores value at path, creating missing intermediate maps (ABI.md,
	// "State"). value aliases guest memory and is valid only during the call:
	// copy what you keep.
	Set(path string, value []byte) error
	// Delete removes the value at path; abi.StatusNotFound if there is none.
	Delete(path string) error
}

// InstanceConfig configures an Instance. Zero fields take the Runtime's
// defaults.
type InstanceConfig struct {
	// View names the view the instance reduces; it seeds the guest's random
	// source, so it is part of the view's deterministic history.
	View string
	// MemoryLimitPages caps guest memory (64 KiB pages); at most the
	// Runtime's MaxMemoryPages.
	MemoryLimitPages uint32
	// EventTimeout bounds one event and one _initialize.
	EventTimeout time.Duration
	// Logger receives the plugin's output. Nil means the Runtime's logger
	// named after the view.
	Logger hclog.Logger
	// StartSeq is the sequence number of the first event the instance will
	// see (the snapshot's seq + 1); it picks the epoch the first guest is
	// created for. Zero means 1.
	StartSeq uint64
}

// Instance is one view's running plugin. It is not safe for concurrent use:
// one goroutine (the view's) calls Reduce.
type Instance struct {
	m   *Module
	cfg InstanceConfig
	eng *engine
	cm  wazero.CompiledModule

	ctx     context.Context // a *callCtx: the context of the calls into the guest
	instCtx context.Context // ctx plus the memory allocator, for instantiation
	watch   watched
	stopG   api.MutableGlobal // the current guest's stop global; guarded by watch.mu
	fuelG   api.MutableGlobal // the current guest's fuel global
	lin     *mmapMemory       // the current guest's memory, when it is ours (memory_unix.go); else nil
	out     *output

	// The current guest; replaced at epoch boundaries.
	mod      api.Module
	fnBuffer api.Function
	fnReduce api.Function
	fnInit   api.Function
	epoch    uint64
	bufPtr   uint32
	bufSize  uint32 // size last requested from nodb_buffer
	stack    []uint64
	frame    []byte

	// Per-call state read by the host functions.
	initializing bool
	probe        bool     // the load-time instance that learns the declarations
	declared     []string // consume declarations (probe only)
	consumes     int      // consume declarations of the current guest's _initialize
	inputs       []string // input declarations of the current guest's _initialize
	pendingFrom  string   // the input whose value pending is ("" for the plugin's own state)
	state        State
	clock        int64
	monotonic    int64
	rng          rand.ChaCha8
	rngSeeded    bool
	rngKind      byte
	rngNum       uint64
	errMsg       []byte
	stateErr     error
	faultErr     error
	exited       bool
	lastPath     string
	pending      []byte
	pendingPath  string

	// The guest of the next epoch, instantiated and initialised in the
	// background (see prefetch).
	next       *prefetched
	epochCalls int // nodb_reduce calls made to the current guest
	adopted    int // prefetched guests taken over (for tests)

	broken error // set after a trap; Reduce refuses afterwards
	closed bool
}

// prefetched is a guest being made ready for a later epoch by a goroutine:
// a whole Instance (its own host-call state, watchdog entry and output), of
// which adopt takes the guest.
type prefetched struct {
	epoch uint64
	done  chan struct{} // closed when inst and err are set
	inst  *Instance
	err   error
}

// prefetchFrom is the position in an epoch (0-based) from which the guest of
// the next epoch is prepared in the background, if the current guest has
// reduced at least prefetchDense events: a view that sees few events, or
// few of the types it consumes, prefetches nothing, and one that does holds
// the spare guest (its memory, ~2.5 MB for a Go guest) for only part of
// each epoch. At replay speed the spare is ready long before the boundary.
const (
	prefetchFrom  = abi.EpochSize / 2
	prefetchDense = abi.EpochSize / 4
)

// prefetchOn turns prefetching off for tests that compare with it.
var prefetchOn = true

// NewInstance creates an instance for a view: it instantiates the module for
// the epoch of cfg.StartSeq and runs its _initialize. A failure there wraps
// ErrInvalidModule (or is a *TrapError for a time-out).
func (m *Module) NewInstance(ctx context.Context, cfg InstanceConfig) (*Instance, error) {
	return m.newInstance(ctx, cfg, false)
}

func (m *Module) newInstance(ctx context.Context, cfg InstanceConfig, probe bool) (*Instance, error) {
	rc := m.rt.cfg
	if cfg.MemoryLimitPages == 0 {
		cfg.MemoryLimitPages = rc.MaxMemoryPages
	}
	if cfg.MemoryLimitPages > rc.MaxMemoryPages {
		return nil, fmt.Errorf("plugins: MemoryLimitPages %d over the runtime's cap of %d", cfg.MemoryLimitPages, rc.MaxMemoryPages)
	}
	if cfg.MemoryLimitPages < m.info.MinMemoryPages {
		return nil, errInvalid(fmt.Sprintf("memory minimum of %d pages is over the instance cap of %d pages", m.info.MinMemoryPages, cfg.MemoryLimitPages), nil)
	}
	if cfg.EventTimeout <= 0 {
		cfg.EventTimeout = rc.EventTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = rc.Logger.Named("plugin").With("view", cfg.View)
	}
	if cfg.StartSeq == 0 {
		cfg.StartSeq = 1
	}
	eng, cm, err := m.compiledFor(ctx, cfg.MemoryLimitPages)
	if err != nil {
		return nil, err
	}
	i := &Instance{m: m, cfg: cfg, eng: eng, cm: cm, out: newOutput(cfg.Logger), stack: make([]uint64, 1)}
	i.ctx = &callCtx{i: i}
	i.instCtx = i.ctx
	if a := allocatorFor(i); a != nil {
		i.instCtx = experimental.WithMemoryAllocator(i.ctx, a)
	}
	i.watch.timeout = cfg.EventTimeout
	i.watch.stop = func() {
		if i.stopG != nil {
			i.stopG.Set(1)
		}
	}
	m.rt.wd.add(&i.watch)
	if probe {
		i.probe = true
		i.declared = []string{}
	}
	if err := i.instantiate(abi.Epoch(cfg.StartSeq), 0); err != nil {
		_ = i.Close(ctx)
		var te *TrapError
		if errors.As(err, &te) && errors.Is(err, ErrTimeout) {
			return nil, err
		}
		return nil, errInvalid("initialization failed", err)
	}
	if probe && len(i.declared) == 0 {
		i.declared = nil
	}
	return i, nil
}

// instantiate replaces the guest with a fresh one for epoch e and runs its
// _initialize (clock 0, random seeded from (view, e)). seq is the event
// that needs the guest, for the TrapError of a failure (0: none yet).
func (i *Instance) instantiate(e, seq uint64) error {
	if i.mod != nil {
		_ = i.mod.Close(i.ctx)
		i.mod, i.lin = nil, nil
	}
	i.bufPtr, i.bufSize = 0, 0
	i.epoch, i.epochCalls = e, 0
	i.consumes, i.inputs = 0, i.inputs[:0] // the limits count per _initialize
	i.beginCall(0, 'i', e, nil)
	i.initializing = true
	i.watch.begin()
	i.lin = nil // set by the allocator (allocatorFor)
	mod, err := i.eng.r.InstantiateModule(i.instCtx, i.cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err == nil {
		g, _ := mod.ExportedGlobal(stopExport).(api.MutableGlobal)
		i.watch.mu.Lock()
		i.stopG = g
		if i.watch.timedOut() && g != nil {
			g.Set(1)
		}
		i.fuelG, _ = mod.ExportedGlobal(fuelExport).(api.MutableGlobal)
		i.watch.mu.Unlock()
		i.mod = mod
		i.fnBuffer = mod.ExportedFunction(abi.ExportBuffer)
		i.fnReduce = mod.ExportedFunction(abi.ExportReduce)
		i.fnInit = mod.ExportedFunction(abi.ExportInitialize)
		if i.fnInit != nil {
			err = i.fnInit.CallWithStack(i.ctx, nil)
		}
	}
	timedOut := i.watch.end()
	i.initializing = false
	if err == nil && timedOut {
		err = ErrTimeout
	}
	if err != nil {
		return i.trap(seq, "_initialize failed", err)
	}
	return nil
}

// switchTo makes the guest one for epoch e: the prefetched one if it is for
// e and came up without error, else a new one made now. A prefetched guest
// is what instantiate would make: a fresh instance whose _initialize ran
// with clock 0 and the random source of (view, e). If its preparation failed
// (a time-out on a loaded machine, say), instantiate runs it again here and
// reports what happens this time.
func (i *Instance) switchTo(e, seq uint64) error {
	if p := i.next; p != nil {
		i.next = nil
		<-p.done
		if p.err == nil && p.epoch == e {
			i.adopt(p.inst)
			return nil
		}
		if p.inst != nil {
			_ = p.inst.Close(i.ctx)
		}
	}
	return i.instantiate(e, seq)
}

// prefetch starts preparing the guest for epoch e in the background.
func (i *Instance) prefetch(e uint64) {
	p := &prefetched{epoch: e, done: make(chan struct{})}
	i.next = p
	cfg := i.cfg
	cfg.StartSeq = abi.EpochStart(e)
	go func() {
		defer close(p.done)
		p.inst, p.err = i.m.newInstance(context.Background(), cfg, false)
	}()
}

// adopt makes the guest of n (a prefetched Instance, for epoch n.epoch)
// this instance's guest and discards the rest of n.
func (i *Instance) adopt(n *Instance) {
	if i.mod != nil {
		_ = i.mod.Close(i.ctx)
	}
	i.watch.mu.Lock()
	i.stopG, i.fuelG = n.stopG, n.fuelG
	i.watch.mu.Unlock()
	i.mod, i.fnBuffer, i.fnReduce, i.fnInit, i.lin = n.mod, n.fnBuffer, n.fnReduce, n.fnInit, n.lin
	i.epoch, i.monotonic = n.epoch, n.monotonic
	i.bufPtr, i.bufSize = 0, 0
	i.epochCalls = 0
	i.adopted++
	n.mod = nil // not closed with n
	_ = n.Close(i.ctx)
}

// refuel gives the guest a full tank for the next call.
func (i *Instance) refuel() {
	if i.fuelG != nil {
		i.fuelG.Set(eventFuel)
	}
}

// outOfFuel reports whether the guest used up its fuel.
func (i *Instance) outOfFuel() bool {
	return i.fuelG != nil && uint32(i.fuelG.Get()) == 0
}

// beginCall resets the per-call state.
func (i *Instance) beginCall(t int64, rngKind byte, rngNum uint64, st State) {
	i.clock = t
	if i.mod == nil {
		i.monotonic = 1 // a fresh guest; Go's runtime refuses a zero monotonic clock
	}
	if t > i.monotonic {
		i.monotonic = t
	}
	i.rngSeeded, i.rngKind, i.rngNum = false, rngKind, rngNum
	i.state = st
	i.errMsg = i.errMsg[:0]
	i.stateErr, i.faultErr = nil, nil
	i.clearPending()
	i.out.reset()
}

// Reduce applies one event to st through the plugin. Events of types the
// module does not consume return nil without entering Wasm. Before the first
// event of a new epoch (abi.Epoch(ev.Seq) differs from the current guest's),
// the guest is discarded and a fresh one is created and initialised.
//
// ctx is checked before the event; the event itself is bounded by the
// instance's EventTimeout. On any error the State changes made during this
// event must be discarded by the caller. A *TrapError (including ErrTimeout)
// leaves the Instance unusable: later calls return ErrUnusable.
func (i *Instance) Reduce(ctx context.Context, ev *Event, st State) error {
	if i.closed {
		return ErrClosed
	}
	if i.broken != nil {
		return fmt.Errorf("%w: %w", ErrUnusable, i.broken)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !i.m.consumes.has(ev.Type) {
		return nil
	}
	if e := abi.Epoch(ev.Seq); e != i.epoch || i.mod == nil {
		if err := i.switchTo(e, ev.Seq); err != nil {
			return err
		}
	}
	i.epochCalls++
	if i.next == nil && i.epochCalls >= prefetchDense && (ev.Seq-1)%abi.EpochSize >= prefetchFrom && prefetchOn && !i.probe {
		i.prefetch(i.epoch + 1)
	}
	frame, err := abi.AppendFrame(i.frame[:0], ev.Seq, ev.Time, ev.PSeq, ev.Producer, ev.Type, ev.Payload)
	if err != nil {
		return fmt.Errorf("plugins: view %q event %d: payload: %w", i.cfg.View, ev.Seq, err)
	}
	i.frame = frame
	n := uint32(len(frame))
	i.beginCall(ev.Time, 'e', ev.Seq, st)
	i.refuel()
	i.watch.begin()
	err = i.call(n)
	timedOut := i.watch.end()
	i.state = nil
	if err == nil && timedOut {
		err = ErrTimeout
	}
	if err != nil {
		return i.trap(ev.Seq, "reduce failed", err)
	}
	if i.faultErr != nil {
		return i.trap(ev.Seq, "ABI violation", i.faultErr)
	}
	if i.stateErr != nil {
		return &StateError{View: i.cfg.View, Seq: ev.Seq, Err: i.stateErr}
	}
	if status := api.DecodeI32(i.stack[0]); status != 0 {
		return &ReducerError{View: i.cfg.View, Seq: ev.Seq, Type: ev.Type, Status: status, Message: string(i.errMsg)}
	}
	return nil
}

// call writes the frame into the guest buffer and calls nodb_reduce.
func (i *Instance) call(n uint32) error {
	if n > i.bufSize {
		i.stack[0] = api.EncodeU32(n)
		if err := i.fnBuffer.CallWithStack(i.ctx, i.stack); err != nil {
			return err
		}
		ptr := api.DecodeU32(i.stack[0])
		if _, ok := i.memRange(i.mod, ptr, n); !ok || ptr == 0 {
			i.faultErr = &hostFault{msg: fmt.Sprintf("%s returned an out-of-range buffer %#x for %d bytes", abi.ExportBuffer, ptr, n)}
			return nil
		}
		i.bufPtr, i.bufSize = ptr, n
	}
	b, ok := i.memRange(i.mod, i.bufPtr, n)
	if !ok {
		i.faultErr = &hostFault{msg: fmt.Sprintf("event buffer %#x out of range", i.bufPtr)}
		return nil
	}
	copy(b, i.frame)
	i.stack[0] = api.EncodeU32(n)
	return i.fnReduce.CallWithStack(i.ctx, i.stack)
}

// trap marks the instance unusable and builds the TrapError.
func (i *Instance) trap(seq uint64, reason string, err error) error {
	te := &TrapError{View: i.cfg.View, Seq: seq, Reason: reason, Err: err}
	timedOut := i.watch.timedOut()
	switch {
	case timedOut:
		te.Reason = fmt.Sprintf("exceeded the time limit of %v", i.cfg.EventTimeout)
		te.Err = ErrTimeout
	case i.outOfFuel():
		te.Reason = fmt.Sprintf("exceeded its budget of %d loop iterations for one event", eventFuel)
		te.Err = ErrTimeout
	case i.faultErr != nil:
		te.Reason = "ABI violation"
		te.Err = i.faultErr
	case i.closed:
		te.Err = ErrClosed
	case i.exited:
		var ee *sys.ExitError
		if errors.As(err, &ee) {
			te.Reason = fmt.Sprintf("plugin exited with code %d", ee.ExitCode())
		}
	}
	te.Stderr = i.out.stderr()
	i.broken = te
	if i.mod != nil {
		_ = i.mod.Close(context.Background())
		i.mod, i.lin = nil, nil
	}
	return te
}

// Epoch returns the epoch of the current guest.
func (i *Instance) Epoch() uint64 { return i.epoch }

// Close releases the guest. It is safe to call more than once.
func (i *Instance) Close(ctx context.Context) error {
	if i.closed {
		return nil
	}
	i.closed = true
	defer i.m.release(ctx)
	i.m.rt.wd.remove(&i.watch)
	if p := i.next; p != nil {
		i.next = nil
		<-p.done
		if p.inst != nil {
			_ = p.inst.Close(ctx)
		}
	}
	var err error
	if i.mod != nil {
		err = i.mod.Close(ctx)
		i.mod, i.lin = nil, nil
	}
	return err
}
