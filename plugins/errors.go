package plugins

import (
	"errors"
	"strconv"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrInvalidModule is wrapped by every error that rejects a module at
	// Compile or NewInstance: bad Wasm, missing or mistyped exports,
	// forbidden or unknown imports, a memory minimum over the cap, a failing
	// _initialize. Nothing of such a module ever reduces an event.
	ErrInvalidModule = errors.New("plugins: invalid module")
	// ErrABIVersion is wrapped (together with ErrInvalidModule) when the
	// module was built for another ABI version than abi.Version.
	ErrABIVersion = errors.New("plugins: ABI version mismatch")
	// ErrTimeout is the cause of a TrapError for an event (or _initialize)
	// that ran longer than its EventTimeout.
	ErrTimeout = errors.New("plugins: plugin exceeded its time limit")
	// ErrUnusable is returned by Reduce on an Instance that trapped or timed
	// out before. Create a new Instance (after fixing the plugin).
	ErrUnusable = errors.New("plugins: instance unusable after an earlier trap")
	// ErrClosed is returned by calls on a closed Instance or Runtime.
	ErrClosed = errors.New("plugins: closed")
)

// TrapError reports that the guest trapped, exited (a Go panic or fatal error
// ends in proc_exit), ran out of memory or time, or broke the ABI (for
// example passed an out-of-range pointer to a host function). The Instance is
// unusable afterwards; the caller halts the view at Seq and keeps its state at
// the last good event. State changes made during the failed event must be
// discarded.
type TrapError struct {
	// View is the InstanceConfig.View of the instance.
	View string
	// Seq is the sequence number of the event being reduced; 0 while the
	// instance was initialising (_initialize).
	Seq uint64
	// Reason describes what happened, for humans.
	Reason string
	// Stderr is the end of what the guest wrote to stderr before the trap
	// (a Go panic message and stack, for example), possibly empty.
	Stderr string
	// Err is the cause: ErrTimeout, a *sys.ExitError, or the runtime's error.
	Err error
}

// Error implements error.
func (e *TrapError) Error() string {
	s := "plugins: view " + strconv.Quote(e.View) + " trapped at seq " + strconv.FormatUint(e.Seq, 10) + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Stderr != "" {
		s += "\nplugin stderr:\n" + e.Stderr
	}
	return s
}

// Unwrap returns the cause.
func (e *TrapError) Unwrap() error { return e.Err }

// ReducerError reports that the reducer rejected the event: nodb_reduce
// returned a non-zero status, with the message the guest set. The Instance
// stays usable; the caller decides what a rejected event means for the view.
// State changes made during the event must be discarded.
type ReducerError struct {
	View    string // the instance's view
	Seq     uint64 // the rejected event
	Type    string // its type
	Status  int32  // what nodb_reduce returned (abi.StatusError from the SDKs)
	Message string // set with set_error; may be empty
}

// Error implements error.
func (e *ReducerError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "status " + strconv.Itoa(int(e.Status))
	}
	return "plugins: view " + strconv.Quote(e.View) + " rejected event " + strconv.FormatUint(e.Seq, 10) +
		" (" + e.Type + "): " + msg
}

// StateError reports that the State failed with an error that has no ABI
// status (I/O, an internal error). The guest saw StatusHost; the event fails
// whatever the guest did next. The Instance stays usable.
type StateError struct {
	View string // the instance's view
	Seq  uint64 // the failed event
	Err  error  // what the State returned
}

// Error implements error.
func (e *StateError) Error() string {
	return "plugins: view " + strconv.Quote(e.View) + " event " + strconv.FormatUint(e.Seq, 10) + ": state: " + e.Err.Error()
}

// Unwrap returns the State's error.
func (e *StateError) Unwrap() error { return e.Err }

// invalidModule wraps ErrInvalidModule with detail.
type invalidModule struct {
	detail string
	extra  error
}

func (e *invalidModule) Error() string {
	s := "plugins: invalid module: " + e.detail
	if e.extra != nil {
		s += ": " + e.extra.Error()
	}
	return s
}

func (e *invalidModule) Is(target error) bool {
	return target == ErrInvalidModule || (e.extra != nil && errors.Is(e.extra, target))
}

func (e *invalidModule) Unwrap() error { return e.extra }

func errInvalid(detail string, cause error) error {
	return &invalidModule{detail: detail, extra: cause}
}
