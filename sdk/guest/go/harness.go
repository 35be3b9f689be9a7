//go:build !wasip1

package nodb

import (
	"errors"
	"slices"
	"unicode/utf8"

	"github.com/nodb-dev/nodb/abi"
)

// This file replaces the host when the SDK is built natively (go test): the
// host functions operate on the Store of the Harness that is reducing, with
// the same path and value checks the real host makes.

// Store is the state a Harness reduces into. Its method set is the same as
// the host's plugins.State, so one implementation can serve both.
type Store interface {
	// Get returns the CBOR value at path, ok=false if there is none.
	Get(path string) (value []byte, ok bool, err error)
	// Set stores a CBOR value at path, creating missing intermediate maps.
	Set(path string, value []byte) error
	// Delete removes the value at path (abi.StatusNotFound if none).
	Delete(path string) error
}

// Harness runs the registered handlers natively, as the host would: it
// encodes each event into an ABI frame and dispatches it through the same
// code path as nodb_reduce. Use one Harness at a time per process (handlers
// are global, like in the guest).
type Harness struct {
	// Store is the state; NewHarness uses a MemStore.
	Store Store
	// Producer is the producer name of events sent with Reduce.
	Producer string

	// Inputs are the states of a cascade's upstream views, by name; Patch
	// sets them.
	Inputs map[string]Store

	seq      uint64
	frame    []byte
	errMsg   string
	stateErr error
	logs     []string
}

// NewHarness returns a Harness over an empty MemStore.
func NewHarness() *Harness {
	return &Harness{Store: NewMemStore(), Producer: "test", Inputs: map[string]Store{}}
}

// current is the Harness whose Reduce is running.
var current *Harness

// consumed lists the types declared with On (natively, for Consumes).
var consumed []string

// Consumes returns the event types registered with On, in order.
func Consumes() []string { return append([]string(nil), consumed...) }

// Reduce sends the next event (sequence number one past the last; time
// 1e9*seq) with a JSON payload.
func (h *Harness) Reduce(eventType, payloadJSON string) error {
	seq := h.seq + 1
	return h.ReduceEvent(seq, int64(seq)*1e9, h.Producer, seq, eventType, []byte(payloadJSON))
}

// ReduceEvent sends one event with every field given. On error the state
// changes the handler made are kept (a Harness has no rollback); the host
// discards them.
func (h *Harness) ReduceEvent(seq uint64, time int64, producer string, pseq uint64, eventType string, payloadJSON []byte) error {
	f, err := abi.AppendFrame(h.frame[:0], seq, time, pseq, producer, eventType, payloadJSON)
	if err != nil {
		return err
	}
	h.frame = f
	h.seq = seq
	h.errMsg, h.stateErr = "", nil
	prev := current
	current = h
	defer func() { current = prev }()
	st := reduce(f)
	if h.stateErr != nil {
		return h.stateErr
	}
	if st != 0 {
		return &RejectedError{Seq: seq, Type: eventType, Message: h.errMsg}
	}
	return nil
}

// reduce runs the handler for one event frame as nodb_reduce does.
func reduce(frame []byte) int32 {
	frameBuf = frame
	return nodbReduce(uint32(len(frame)))
}

// RejectedError is returned by Harness.Reduce when a handler returned an
// error (the host reports it as a plugins.ReducerError).
type RejectedError struct {
	Seq     uint64 // the rejected event
	Type    string // its type
	Message string // the handler's error text
}

// Error implements error.
func (e *RejectedError) Error() string { return "nodb: event rejected: " + e.Message }

// Get returns the value at path.
func (h *Harness) Get(path string) (Value, bool) {
	b, ok, err := h.Store.Get(path)
	if err != nil || !ok {
		return Value{}, false
	}
	return Value{b: b}, true
}

// JSON returns the value at path as JSON text ("" if there is none). Maps
// come out in the store's key order.
func (h *Harness) JSON(path string) string {
	v, ok := h.Get(path)
	if !ok {
		return ""
	}
	return v.JSON()
}

// Logs returns the messages logged with Log and LogAt so far.
func (h *Harness) Logs() []string { return h.logs }

// hostConsume declares t as the host does (ABI.md 6.1), but at any time:
// natively, there is no _initialize to tell init functions from handlers.
func hostConsume(t string) int32 {
	switch {
	case len(t) == 0 || len(t) > abi.MaxTypeSize || !utf8.ValidString(t):
		return int32(abi.StatusInvalidValue)
	case len(consumed) >= abi.MaxConsumes:
		return int32(abi.StatusTooLarge)
	}
	consumed = append(consumed, t)
	return 0
}

// inputs lists the inputs declared with OnPatch (natively, for Inputs).
var inputs []string

// Inputs returns the upstream views registered with OnPatch, in order.
func Inputs() []string { return append([]string(nil), inputs...) }

// hostInput declares an input as the host does (ABI.md 13.1), but at any
// time.
func hostInput(name string) int32 {
	switch {
	case !abi.ValidViewName(name):
		return int32(abi.StatusInvalidValue)
	case slices.Contains(inputs, name):
		return 0
	case len(inputs) >= abi.MaxInputs:
		return int32(abi.StatusTooLarge)
	}
	inputs = append(inputs, name)
	return 0
}

// Patch runs a cascade's handler for input as the host would: it applies the
// RFC 6902 ops (JSON text, an array) to the input's state in h.Inputs (an
// empty MemStore at first), then delivers them as the patch of the next seq.
// An ops array that does not apply is an error, and nothing is delivered.
func (h *Harness) Patch(input, opsJSON string) error {
	in, ok := h.Inputs[input]
	if !ok {
		in = NewMemStore()
		h.Inputs[input] = in
	}
	ms, ok := in.(*MemStore)
	if !ok {
		return errors.New("nodb: Harness.Patch needs a *MemStore input")
	}
	if err := ms.ApplyJSONPatch(opsJSON); err != nil {
		return err
	}
	seq := h.seq + 1
	return h.ReduceEvent(seq, 0, input, 0, abi.TypePatch, []byte(opsJSON))
}

func hostInputGet(name, path string, buf []byte) int32 {
	var st Store
	if current != nil {
		st = current.Inputs[name]
	}
	return storeGet(st, path, buf)
}
func storeStatus(h *Harness, err error) int32 {
	if err == nil {
		return 0
	}
	var st abi.Status
	if errors.As(err, &st) && st < 0 && st != abi.StatusHost {
		return int32(st)
	}
	if h.stateErr == nil {
		h.stateErr = err
	}
	return int32(abi.StatusHost)
}

func hostGet(path string, buf []byte) int32 {
	var st Store
	if current != nil {
		st = current.Store
	}
	return storeGet(st, path, buf)
}

// storeGet answers a state_get (or input_get) from st as the host would.
func storeGet(st Store, path string, buf []byte) int32 {
	h := current
	if h == nil {
		return int32(abi.StatusBadState)
	}
	if status := abi.ValidatePath(path); status != abi.StatusOK {
		return int32(status)
	}
	if st == nil {
		return int32(abi.StatusNotFound) // an input the harness was not given
	}
	v, ok, err := st.Get(path)
	if err != nil {
		return storeStatus(h, err)
	}
	if !ok {
		return int32(abi.StatusNotFound)
	}
	if len(v) > abi.MaxValueSize {
		return int32(abi.StatusTooLarge)
	}
	if len(v) <= len(buf) {
		copy(buf, v)
	}
	return int32(len(v))
}
func hostSet(path string, v []byte) int32 {
	h := current
	if h == nil {
		return int32(abi.StatusBadState)
	}
	if st := abi.ValidatePath(path); st != abi.StatusOK {
		return int32(st)
	}
	if st := abi.ValidateValue(v); st != abi.StatusOK {
		return int32(st)
	}
	return storeStatus(h, h.Store.Set(path, v))
}

func hostDelete(path string) int32 {
	h := current
	if h == nil {
		return int32(abi.StatusBadState)
	}
	if st := abi.ValidatePath(path); st != abi.StatusOK {
		return int32(st)
	}
	return storeStatus(h, h.Store.Delete(path))
}

// hostHas answers a state_has as the host would: the Store's own Has if it
// has one (view.TxState does), else its Get.
func hostHas(path string) int32 {
	h := current
	if h == nil {
		return int32(abi.StatusBadState)
	}
	if st := abi.ValidatePath(path); st != abi.StatusOK {
		return int32(st)
	}
	var ok bool
	var err error
	if hs, can := h.Store.(interface{ Has(string) (bool, error) }); can {
		ok, err = hs.Has(path)
	} else {
		_, ok, err = h.Store.Get(path)
	}
	switch {
	case err != nil:
		return storeStatus(h, err)
	case !ok:
		return int32(abi.StatusNotFound)
	}
	return 0
}

func hostLog(_ int32, msg string) {
	if current != nil {
		current.logs = append(current.logs, msg)
	}
}

func hostSetError(msg string) {
	if current != nil {
		current.errMsg = msg
	}
}
