package nodb

import (
	"strconv"

	"github.com/nodb-dev/nodb/abi"
)

// A cascade is a plugin whose inputs are other views instead of events: it
// registers a PatchHandler per upstream view with OnPatch, receives each
// change of those views as a Patch tagged with the seq of the event that
// caused it, reads the inputs' states with Input, and builds its own state
// with the same State methods as a reducer:
//
//	func init() {
//		nodb.OnPatch("todos", func(s *nodb.State, p nodb.Patch) error {
//			todos := nodb.Input("todos")
//			return s.Set("/count", todos.Len("/todos"))
//		})
//	}
//
// A cascade's state must be a function of its inputs' states (see
// abi/ABI.md, section 13): the host may deliver a catch-up patch (the
// difference between two states many events apart) instead of every
// individual change, for example when a cascade is rebuilt, restarted or
// reconnects to a remote input. Patches are there so a cascade can work
// incrementally; reading the inputs is always correct.

// PatchHandler reduces one input's changes at one seq. Returning an error
// rejects the changes of every input at that seq.
type PatchHandler func(s *State, p Patch) error

var patchHandlers = map[string]PatchHandler{}

// OnPatch registers h for the changes of the upstream view input and
// declares the input to the host (which makes the plugin a cascade). Call it
// from an init function only. Patches of one seq are delivered in the order
// the inputs were first registered. It panics if the host refuses the input
// (not a view name; over 16 inputs).
func OnPatch(input string, h PatchHandler) {
	if _, ok := patchHandlers[input]; !ok {
		if st := hostInput(input); st != 0 {
			// The host would not deliver its patches: fail at load.
			panic("nodb: OnPatch(" + strconv.Quote(input) + "): " + abi.Status(st).Error())
		}
	}
	patchHandlers[input] = h
}

// Patch is one input's changes at one seq: RFC 6902 operations (add, remove,
// replace) from the input's previous state to its state as of Seq. Like an
// Event it is valid only during the handler call.
type Patch struct {
	input []byte
	seq   uint64
	ops   Value
}

// Input names the upstream view that changed.
func (p Patch) Input() string { return newString(p.input) }

// Seq is the seq of the event that caused the change (in the upstream
// host's sequence).
func (p Patch) Seq() uint64 { return p.seq }

// Len is the number of operations.
func (p Patch) Len() int { return p.ops.Len() }

// Each calls fn for each operation in order until it returns false. The Op's
// Value is valid only during the handler call.
func (p Patch) Each(fn func(op Op) bool) {
	p.ops.Items(func(_ int, v Value) bool {
		return fn(Op{Op: v.Key("op").Str(), Path: v.Key("path").Str(), Value: v.Key("value")})
	})
}

// Ops returns the operations.
func (p Patch) Ops() []Op {
	out := make([]Op, 0, p.Len())
	p.Each(func(op Op) bool { out = append(out, op); return true })
	return out
}

// Touches reports whether an operation changed prefix or something under
// or above it (a path equal to prefix, starting with prefix+"/", or a parent
// of prefix). Use it to skip patches a cascade does not care about.
func (p Patch) Touches(prefix string) bool {
	hit := false
	p.Each(func(op Op) bool {
		hit = pathRelated(op.Path, prefix)
		return !hit
	})
	return hit
}

func pathRelated(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return b[:len(a)] == a && (len(a) == len(b) || b[len(a)] == '/')
}

// Op is one RFC 6902 operation of a Patch.
type Op struct {
	// Op is "add", "remove" or "replace".
	Op string
	// Path is the JSON Pointer the operation changes.
	Path string
	// Value is the new value (not for remove).
	Value Value
}

// InputState reads an upstream view's state as of the patch being reduced.
// Its methods mirror State's reads; values are copies or are valid until
// the next read, as for State.
type InputState struct {
	reader
}

var inputStates = map[string]*InputState{}

// Input returns the reader of the upstream view name (one the plugin
// registered with OnPatch). Reads outside a handler, or of an input that
// was not declared, find nothing.
func Input(name string) *InputState {
	in, ok := inputStates[name]
	if !ok {
		in = &InputState{reader{input: name}}
		inputStates[name] = in
	}
	return in
}

// Get returns a copy of the value at path.
func (in *InputState) Get(path string) (Value, bool) {
	b, ok := in.raw(path)
	if !ok {
		return Value{}, false
	}
	return Value{b: append([]byte(nil), b...)}, true
}

// View returns the value at path without copying it: it is valid until the
// next read of this input.
func (in *InputState) View(path string) Value {
	b, _ := in.raw(path)
	return Value{b: b}
}

// Has reports whether there is a value at path.
func (in *InputState) Has(path string) bool { _, ok := in.raw(path); return ok }

// GetStr returns the string at path, or "".
func (in *InputState) GetStr(path string) string { return in.View(path).Str() }

// GetInt returns the integer at path, or 0.
func (in *InputState) GetInt(path string) int64 { return in.View(path).Int() }

// GetFloat returns the number at path, or 0.
func (in *InputState) GetFloat(path string) float64 { return in.View(path).Float() }

// GetBool returns the boolean at path, or false.
func (in *InputState) GetBool(path string) bool { return in.View(path).Bool() }

// Keys returns the keys of the map at path, or nil.
func (in *InputState) Keys(path string) []string { return in.View(path).Keys() }

// Len returns the number of entries of the map or array at path, or 0.
func (in *InputState) Len(path string) int { return in.View(path).Len() }

// reducePatch dispatches a nodb/patch frame to its input's handler.
func reducePatch(f abi.Frame) int32 {
	h, ok := patchHandlers[string(f.Producer)]
	if !ok {
		return 0
	}
	if err := h(&theState, Patch{input: f.Producer, seq: f.Seq, ops: Value{b: f.Payload}}); err != nil {
		hostSetError(err.Error())
		return int32(abi.StatusError)
	}
	return 0
}
