package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nodb-dev/nodb/abi"
)

// instKey is the context key under which a call's *Instance travels to the
// host functions (callCtx answers it; a context wrapping one passes it on).
type instKey struct{}

// callCtx is the context of every call into an Instance's guest, built once
// per Instance. It is not derived from the caller's context: it has no
// deadline, no cancellation (an event is bounded by the watchdog) and no
// values but the Instance. So a host function finds its Instance with one
// type assertion instead of a walk up a chain of contexts, and wazero's own
// lookup on each call into the guest (its snapshotter key) stops here
// instead of walking the caller's chain. Each Instance has its own, so calls
// on many goroutines each see theirs.
type callCtx struct{ i *Instance }

// Deadline implements context.Context: there is none.
func (*callCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context: never done.
func (*callCtx) Done() <-chan struct{} { return nil }

// Err implements context.Context: always nil.
func (*callCtx) Err() error { return nil }

// Value implements context.Context: the Instance for instKey, else nil.
func (c *callCtx) Value(key any) any {
	if _, ok := key.(instKey); ok {
		return c.i
	}
	return nil
}

func instanceOf(ctx context.Context) *Instance {
	if c, ok := ctx.(*callCtx); ok {
		return c.i
	}
	return instanceOfValue(ctx)
}

func instanceOfValue(ctx context.Context) *Instance {
	i, _ := ctx.Value(instKey{}).(*Instance)
	if i == nil {
		panic(errors.New("plugins: host function called outside an instance"))
	}
	return i
}

// hostFault is panicked by a host function when the guest broke the ABI (an
// out-of-range pointer, say). wazero turns the panic into an error of the
// call; the Instance remembers the fault and reports a TrapError.
type hostFault struct{ msg string }

func (f *hostFault) Error() string { return "plugins: " + f.msg }

// fault records an ABI violation and aborts the guest call.
func (i *Instance) fault(fn, format string, args ...any) {
	f := &hostFault{msg: fn + ": " + fmt.Sprintf(format, args...)}
	if i.faultErr == nil {
		i.faultErr = f
	}
	panic(f)
}

// memRange returns a view of guest memory [ptr, ptr+n) of mod, the current
// guest's module, and whether that range lies within memory.
func (i *Instance) memRange(mod api.Module, ptr, n uint32) ([]byte, bool) {
	if l := i.lin; l != nil {
		if end := uint64(ptr) + uint64(n); end <= l.used {
			return l.buf[ptr:end:end], true
		}
		return nil, false
	}
	return mod.Memory().Read(ptr, n)
}

// read returns a view of guest memory [ptr, ptr+n) or faults. The common
// case (our own memory, in range) is small enough to be inlined.
func (i *Instance) read(mod api.Module, fn string, ptr, n uint32) []byte {
	if l := i.lin; l != nil {
		if end := uint64(ptr) + uint64(n); end <= l.used {
			return l.buf[ptr:end:end]
		}
	}
	return i.readSlow(mod, fn, ptr, n)
}

func (i *Instance) readSlow(mod api.Module, fn string, ptr, n uint32) []byte {
	b, ok := i.memRange(mod, ptr, n)
	if !ok {
		i.fault(fn, "out-of-range memory access: pointer %#x length %d (memory size %d)", ptr, n, mod.Memory().Size())
	}
	return b
}

// nodbFuncs are the host functions of ABI v1 with their types.
var nodbFuncs = map[string]signature{
	abi.FuncABIVersion:  sig(nil),
	abi.FuncConsume:     sig([]api.ValueType{i32, i32}, i32),
	abi.FuncStateGet:    sig([]api.ValueType{i32, i32, i32, i32}, i32),
	abi.FuncStateHas:    sig([]api.ValueType{i32, i32}, i32),
	abi.FuncStateSet:    sig([]api.ValueType{i32, i32, i32, i32}, i32),
	abi.FuncStateDelete: sig([]api.ValueType{i32, i32}, i32),
	abi.FuncLog:         sig([]api.ValueType{i32, i32, i32}),
	abi.FuncSetError:    sig([]api.ValueType{i32, i32}),
	abi.FuncInput:       sig([]api.ValueType{i32, i32}, i32),
	abi.FuncInputGet:    sig([]api.ValueType{i32, i32, i32, i32, i32, i32}, i32),
}

var nodbImpl = map[string]api.GoModuleFunc{
	abi.FuncABIVersion:  func(context.Context, api.Module, []uint64) {},
	abi.FuncConsume:     hostConsume,
	abi.FuncStateGet:    hostStateGet,
	abi.FuncStateHas:    hostStateHas,
	abi.FuncStateSet:    hostStateSet,
	abi.FuncStateDelete: hostStateDelete,
	abi.FuncLog:         hostLog,
	abi.FuncSetError:    hostSetError,
	abi.FuncInput:       hostInput,
	abi.FuncInputGet:    hostInputGet,
}

// instantiateHostModules defines nodb_v1 and the WASI subset in a runtime.
func instantiateHostModules(ctx context.Context, r wazero.Runtime) error {
	for _, hm := range []struct {
		name  string
		sigs  map[string]signature
		impls map[string]api.GoModuleFunc
	}{
		{abi.ModuleName, nodbFuncs, nodbImpl},
		{abi.WASIModuleName, wasiFuncs, wasiImpl},
	} {
		b := r.NewHostModuleBuilder(hm.name)
		for name, s := range hm.sigs {
			b.NewFunctionBuilder().WithGoModuleFunction(hm.impls[name], s.params, s.results).Export(name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("plugins: host module %s: %w", hm.name, err)
		}
	}
	return nil
}

func ret(stack []uint64, st abi.Status) { stack[0] = api.EncodeI32(int32(st)) }

// stateReady ends a state_* call early with a status for the guest if its
// path was bad (st) or there is no state to use (outside an event); it is
// called after every argument was read, so out-of-range ones fault first.
func (i *Instance) stateReady(stack []uint64, st abi.Status) bool {
	if st == abi.StatusOK && i.state == nil {
		st = abi.StatusBadState
	}
	if st != abi.StatusOK {
		ret(stack, st)
		return false
	}
	return true
}

// statusOf maps a State error to the status the guest sees; errors without
// an ABI status become StatusHost and are remembered to fail the event.
func (i *Instance) statusOf(err error) abi.Status {
	if err == nil {
		return abi.StatusOK
	}
	var st abi.Status
	if errors.As(err, &st) && st < 0 && st != abi.StatusHost {
		return st
	}
	if i.stateErr == nil {
		i.stateErr = err
	}
	return abi.StatusHost
}

// path reads and validates a path argument. It returns the path and StatusOK,
// or a status for the guest.
func (i *Instance) path(mod api.Module, fn string, ptr, n uint32) (string, abi.Status) {
	if n > abi.MaxPathSize {
		i.read(mod, fn, ptr, n) // fault first if out of range
		return "", abi.StatusTooLarge
	}
	b := i.read(mod, fn, ptr, n)
	if i.lastPath != "" && string(b) == i.lastPath { // no allocation
		return i.lastPath, abi.StatusOK
	}
	p := string(b)
	if st := abi.ValidatePath(p); st != abi.StatusOK {
		return "", st
	}
	i.lastPath = p
	return p, abi.StatusOK
}

func hostConsume(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	b := i.read(mod, abi.FuncConsume, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	switch {
	case !i.initializing:
		ret(stack, abi.StatusBadState)
	case len(b) == 0 || len(b) > abi.MaxTypeSize || !utf8.Valid(b):
		ret(stack, abi.StatusInvalidValue)
	case i.consumes >= abi.MaxConsumes:
		ret(stack, abi.StatusTooLarge)
	default:
		i.consumes++
		if i.probe {
			i.declared = append(i.declared, string(b))
		}
		ret(stack, abi.StatusOK)
	}
}

// hostInput declares an upstream view: the plugin is a cascade.
func hostInput(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	b := i.read(mod, abi.FuncInput, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	switch {
	case !i.initializing:
		ret(stack, abi.StatusBadState)
	case len(b) > abi.MaxNameSize || !abi.ValidViewName(string(b)):
		ret(stack, abi.StatusInvalidValue)
	case slices.Contains(i.inputs, string(b)): // no allocation
		ret(stack, abi.StatusOK)
	case len(i.inputs) >= abi.MaxInputs:
		ret(stack, abi.StatusTooLarge)
	default:
		i.inputs = append(i.inputs, string(b))
		ret(stack, abi.StatusOK)
	}
}

// InputState is implemented by the State given to a cascade's calls: it
// reads the cascade's inputs as of the patch being reduced.
type InputState interface {
	// InputGet returns the CBOR encoding of the value at path of input's
	// state, ok=false if there is none. An unknown input is
	// abi.StatusNotFound.
	InputGet(input, path string) (value []byte, ok bool, err error)
}

func hostInputGet(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	name := i.read(mod, abi.FuncInputGet, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	p, st := i.path(mod, abi.FuncInputGet, api.DecodeU32(stack[2]), api.DecodeU32(stack[3]))
	bufPtr, bufCap := api.DecodeU32(stack[4]), api.DecodeU32(stack[5])
	buf := i.read(mod, abi.FuncInputGet, bufPtr, bufCap)
	if st != abi.StatusOK {
		ret(stack, st)
		return
	}
	is, ok := i.state.(InputState)
	if i.state == nil || !ok {
		ret(stack, abi.StatusBadState)
		return
	}
	if len(name) == 0 || len(name) > abi.MaxNameSize {
		// No input has an empty name ("" is the own state's key) or a
		// longer one; and a name is copied below, which for a name as long
		// as the memory would allocate that much on every call.
		ret(stack, abi.StatusNotFound)
		return
	}
	from := string(name)
	v := i.retry(from, p)
	ok, err := v != nil, error(nil)
	if v == nil {
		v, ok, err = is.InputGet(from, p)
	}
	i.answer(stack, buf, bufCap, from, p, v, ok, err)
}

func hostStateGet(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	p, st := i.path(mod, abi.FuncStateGet, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	bufPtr, bufCap := api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	buf := i.read(mod, abi.FuncStateGet, bufPtr, bufCap)
	if !i.stateReady(stack, st) {
		return
	}
	v := i.retry("", p)
	ok, err := v != nil, error(nil)
	if v == nil {
		v, ok, err = i.state.Get(p)
	}
	i.answer(stack, buf, bufCap, "", p, v, ok, err)
}

// retry returns the value kept for the immediate retry of a get of path p
// of from (an input's name, "" for the plugin's own state) whose value did
// not fit in the guest's buffer; nil if there is none.
func (i *Instance) retry(from, p string) []byte {
	if i.pending != nil && i.pendingFrom == from && i.pendingPath == p {
		return i.pending
	}
	return nil
}

// answer ends a state_get or input_get: the value's length, the value
// written to buf if it fits, else kept for the retry with a larger buffer;
// or the status of a failed lookup.
func (i *Instance) answer(stack []uint64, buf []byte, bufCap uint32, from, p string, v []byte, ok bool, err error) {
	switch {
	case err != nil:
		ret(stack, i.statusOf(err))
		return
	case !ok:
		ret(stack, abi.StatusNotFound)
		return
	case len(v) > abi.MaxValueSize:
		ret(stack, abi.StatusTooLarge)
		return
	}
	if uint32(len(v)) > bufCap {
		if len(i.pending) == 0 || &v[0] != &i.pending[0] { // not already the kept value
			// A copy: the State may reuse its buffer in its next call.
			i.pendingFrom, i.pendingPath, i.pending = from, p, bytes.Clone(v)
		}
	} else {
		copy(buf, v)
		i.clearPending()
	}
	stack[0] = api.EncodeI32(int32(len(v)))
}

func (i *Instance) clearPending() { i.pendingFrom, i.pendingPath, i.pending = "", "", nil }

func hostStateHas(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	p, st := i.path(mod, abi.FuncStateHas, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	if !i.stateReady(stack, st) {
		return
	}
	switch ok, err := i.state.Has(p); {
	case err != nil:
		ret(stack, i.statusOf(err))
	case !ok:
		ret(stack, abi.StatusNotFound)
	default:
		ret(stack, abi.StatusOK)
	}
}

func hostStateSet(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	p, st := i.path(mod, abi.FuncStateSet, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	v := i.read(mod, abi.FuncStateSet, api.DecodeU32(stack[2]), api.DecodeU32(stack[3]))
	i.clearPending()
	if !i.stateReady(stack, st) {
		return
	}
	if st := abi.ValidateValue(v); st != abi.StatusOK {
		ret(stack, st)
		return
	}
	ret(stack, i.statusOf(i.state.Set(p, v)))
}

func hostStateDelete(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	p, st := i.path(mod, abi.FuncStateDelete, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	i.clearPending()
	if !i.stateReady(stack, st) {
		return
	}
	ret(stack, i.statusOf(i.state.Delete(p)))
}

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	level := api.DecodeI32(stack[0])
	b := i.read(mod, abi.FuncLog, api.DecodeU32(stack[1]), api.DecodeU32(stack[2]))
	i.out.logMessage(level, b)
}

func hostSetError(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	b := i.read(mod, abi.FuncSetError, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	if len(b) > abi.MaxErrorSize {
		b = b[:abi.MaxErrorSize]
	}
	i.errMsg = append(i.errMsg[:0], b...)
}
