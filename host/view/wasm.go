package view

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/plugins"
)

// WasmReducer runs a WebAssembly reducer plugin (abi/ABI.md) as a view's
// Reducer. The host owns the state: the guest reads and changes it through
// host functions that land in the view's statetree transaction.
type WasmReducer struct {
	inst *plugins.Instance
	mod  *plugins.Module
	hash string
	ev   plugins.Event
	st   TxState
}

// NewWasmReducer instantiates mod for the view named view.
func NewWasmReducer(ctx context.Context, mod *plugins.Module, view string, cfg plugins.InstanceConfig) (*WasmReducer, error) {
	cfg.View = view
	inst, err := mod.NewInstance(ctx, cfg)
	if err != nil {
		return nil, err
	}
	info := mod.Info()
	return &WasmReducer{inst: inst, mod: mod, hash: hex.EncodeToString(info.SHA256[:])}, nil
}

// Consumes implements Reducer.
func (r *WasmReducer) Consumes(t string) bool { return r.mod.Consumes(t) }

// Hash implements Reducer: the hex SHA-256 of the module.
func (r *WasmReducer) Hash() string { return r.hash }

// Close implements Reducer.
func (r *WasmReducer) Close() error { return r.inst.Close(context.Background()) }

// Reduce implements Reducer.
func (r *WasmReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	r.ev = plugins.Event{Seq: rec.Seq, Time: rec.Time, Producer: rec.Producer, PSeq: rec.PSeq, Type: rec.Type, Payload: rec.Payload}
	r.st.tx = tx
	err := r.inst.Reduce(ctx, &r.ev, &r.st)
	r.st.tx = nil
	var re *plugins.ReducerError
	if errors.As(err, &re) {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return err
}

// TxState is plugins.State over a statetree transaction: what a plugin's
// state_get, state_set and state_delete do to a view's state. Its buffers
// are reused from call to call: paths are parsed into ptr, values encoded
// into buf.
type TxState struct {
	tx  *statetree.Tx
	buf []byte
	// ptr is the last path parsed. Plugins hand a repeated path on as the
	// same string, which Pointer.Parse does not parse again (the usual
	// get-then-set of one path in an event), and ops recorded through it
	// take their paths from its text instead of building them again.
	ptr statetree.Pointer
}

// Reset points s at tx (nil when the call is over).
func (s *TxState) Reset(tx *statetree.Tx) { s.tx = tx }

// statusError gives a state error the ABI status the guest sees, keeping
// the detailed cause for the host's logs.
type statusError struct {
	st  abi.Status
	err error
}

func (e *statusError) Error() string   { return e.err.Error() }
func (e *statusError) Unwrap() []error { return []error{e.st, e.err} }

// parse parses path into s.ptr and returns its tokens.
func (s *TxState) parse(path string) (statetree.Path, error) {
	if err := s.ptr.Parse(path); err != nil {
		return nil, &statusError{abi.StatusInvalidPath, err}
	}
	return s.ptr.Path(), nil
}

// Get implements plugins.State.
func (s *TxState) Get(path string) ([]byte, bool, error) {
	p, err := s.parse(path)
	if err != nil {
		return nil, false, err
	}
	v, ok := s.tx.Peek(p) // encoded right away: no need to end in-place edits
	if !ok {
		return nil, false, nil
	}
	s.buf = statetree.AppendCBOR(s.buf[:0], v)
	return s.buf, true, nil
}

// Has implements plugins.State: one descent, nothing encoded.
func (s *TxState) Has(path string) (bool, error) {
	p, err := s.parse(path)
	if err != nil {
		return false, err
	}
	_, ok := s.tx.Peek(p)
	return ok, nil
}

// Set implements plugins.State.
func (s *TxState) Set(path string, value []byte) error {
	if _, err := s.parse(path); err != nil {
		return err
	}
	v, err := statetree.DecodeCBOR(value)
	if err != nil {
		return &statusError{abi.StatusInvalidValue, err}
	}
	if path == "" && v.Kind() != statetree.KindMap { // the root is always a map
		return &statusError{abi.StatusTypeMismatch, errors.New("view: the root must be a map")}
	}
	if err := s.tx.SetPointer(&s.ptr, v); err != nil {
		switch {
		case errors.Is(err, statetree.ErrForbiddenKey), errors.Is(err, statetree.ErrNoElement):
			return &statusError{abi.StatusInvalidPath, err}
		case errors.Is(err, statetree.ErrTooDeep):
			return &statusError{abi.StatusTooLarge, err}
		}
		return &statusError{abi.StatusTypeMismatch, err}
	}
	return nil
}

// Delete implements plugins.State.
func (s *TxState) Delete(path string) error {
	if _, err := s.parse(path); err != nil {
		return err
	}
	if path == "" { // deleting the root empties it (ABI.md 6.3)
		return s.tx.SetPointer(&s.ptr, statetree.EmptyMap())
	}
	removed, err := s.tx.RemovePointer(&s.ptr)
	if err != nil {
		return &statusError{abi.StatusTypeMismatch, err}
	}
	if !removed {
		return abi.StatusNotFound
	}
	return nil
}
