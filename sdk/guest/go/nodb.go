// Package nodb is the Go SDK for nodb reducers: ordinary Go functions,
// compiled to WebAssembly, that build a view's state from events.
//
// A reducer registers one handler per event type in an init function and
// changes the view's state through paths (JSON Pointers, RFC 6901):
//
//	func init() {
//		nodb.On("todo/add", func(s *nodb.State, e nodb.Event) error {
//			id := e.Str("id")
//			return s.SetMap(nodb.Path("todos", id), "text", e.Str("text"), "done", false)
//		})
//	}
//
//	func main() {}
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o reducer.wasm .
//
// The state lives in the host, not in the guest: Get, Set and Delete are host
// calls, and Go variables do not survive from one event to the next in any
// way the reducer may rely on (the host re-creates the guest at every epoch
// boundary, see abi.EpochSize). Reducers must be deterministic functions of
// (state, event); the host makes the clock (time.Now is the event's time) and
// random numbers (math/rand, crypto/rand) deterministic per event.
//
// Built for any other platform (go test), the package uses an in-memory host
// instead (see Harness), so the same reducer unit-tests natively.
//
// The SDK imports only package abi from nodb and uses no reflection: the
// per-event path decodes the event frame and CBOR by hand.
//
// # Cost inside WebAssembly
//
// Go compiled to WebAssembly pays for every call and, much more, for every
// heap allocation (about 200 nanoseconds each under wazero, more than
// reading a field of the event). The SDK's per-event path allocates
// nothing of its own: strings it returns (Event.Str, Value.Str, Path, map
// keys) are cut from larger chunks and never overwritten, so they may be
// kept like any string (one kept string keeps its 8 KiB chunk alive). What
// a handler can do:
//
//   - build paths with Path("todos", id, "done") rather than with +, which
//     allocates once per +;
//   - read a value once with View (or a Get*) rather than Has then Get*:
//     each is a host call;
//   - store with SetStr, SetInt, SetFloat, SetBool and SetFields rather
//     than Set or SetMap, whose any parameters cost an allocation for most
//     types.
package nodb

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/nodb-dev/nodb/abi"
)

// Handler reduces one event. Returning an error rejects the event: the host
// discards the changes it made and reports the error's text. A panic is a bug:
// it halts the view at this event.
type Handler func(s *State, e Event) error

type entry struct {
	typ  string
	h    Handler
	n    int    // len(typ), and
	a, b uint64 // the words of typ, see typeKey
}

var handlers = map[string]*entry{}

// On registers h for events of type eventType and declares to the host that
// the plugin consumes that type. Call it from an init function only; the
// host accepts declarations during initialisation only. Registering a type
// again replaces its handler. It panics if the host refuses the declaration
// (a type that is empty, over 256 bytes or not UTF-8; over 1024 types).
func On(eventType string, h Handler) {
	if e, ok := handlers[eventType]; ok {
		e.h = h
		return
	}
	if st := hostConsume(eventType); st != 0 {
		// The host would not deliver it: fail at load, not silently.
		panic("nodb: On(" + strconv.Quote(eventType) + "): " + abi.Status(st).Error())
	}
	handlers[eventType] = &entry{typ: eventType, h: h}
	typeTableFor = -1 // rebuilt at the next lookup
}

// theState is the one State handed to handlers; its buffers are reused.
var theState State

// frameBuf receives event frames from the host (nodb_buffer). It is a
// package variable, so it stays reachable and (Go's collector does not move
// objects) in place until nodb_buffer replaces it. Natively the Harness
// points it at the frame it built.
var frameBuf []byte

// nodbReduce runs the handler for the event frame of n bytes at the start
// of frameBuf and returns the status for nodb_reduce. It decodes the frame
// as abi.DecodeFrame does, in line, and looks the handler up with
// handlerFor's fast path in line too: inside WebAssembly every Go call
// costs a pass through the dispatch loops of caller and callee, so the
// export does the whole dispatch itself. (Natively it is an ordinary
// function, called by the Harness.)
//
//go:wasmexport nodb_reduce
func nodbReduce(n uint32) int32 {
	if n > uint32(len(frameBuf)) {
		hostSetError("nodb: frame larger than the buffer")
		return int32(abi.StatusError)
	}
	frame := frameBuf[:n:n]
	le := binary.LittleEndian
	if len(frame) < abi.FrameHeaderSize || le.Uint32(frame[abi.OffFormat:]) != abi.FormatCBOR {
		return malformed()
	}
	pl := uint64(le.Uint32(frame[abi.OffProducerLen:]))
	tl := uint64(le.Uint32(frame[abi.OffTypeLen:]))
	yl := uint64(le.Uint32(frame[abi.OffPayloadLen:]))
	if abi.FrameHeaderSize+pl+tl+yl != uint64(len(frame)) {
		return malformed()
	}
	t := abi.FrameHeaderSize + pl
	y := t + tl
	typ := frame[t:y:y]
	if len(patchHandlers) > 0 && string(typ) == abi.TypePatch {
		return reducePatch(abi.Frame{
			Seq:      le.Uint64(frame[abi.OffSeq:]),
			Time:     int64(le.Uint64(frame[abi.OffTime:])),
			PSeq:     le.Uint64(frame[abi.OffPSeq:]),
			Producer: frame[abi.FrameHeaderSize:t:t],
			Type:     typ,
			Payload:  frame[y:],
		})
	}
	// handlerFor, with its usual case in line: a type of 8 to 16 bytes,
	// whose two words are all of it.
	var en *entry
	if k := len(typ); k >= 8 && k <= 16 && typeTableFor == len(handlers) {
		a, b := le.Uint64(typ), le.Uint64(typ[k-8:])
		if e := typeTable[typeSlot(k, a, b)]; e != nil && e.n == k && e.a == a && e.b == b {
			en = e
		}
	}
	if en == nil {
		if en = handlerFor(typ); en == nil {
			return 0
		}
	}
	ev := Event{
		seq:      le.Uint64(frame[abi.OffSeq:]),
		time:     int64(le.Uint64(frame[abi.OffTime:])),
		pseq:     le.Uint64(frame[abi.OffPSeq:]),
		producer: frame[abi.FrameHeaderSize:t:t],
		typ:      en.typ,
		payload:  Value{b: frame[y:]},
	}
	if err := en.h(&theState, ev); err != nil {
		hostSetError(err.Error())
		return int32(abi.StatusError)
	}
	return 0
}

// malformed rejects a frame that does not decode.
func malformed() int32 {
	hostSetError("nodb: malformed event frame")
	return int32(abi.StatusError)
}

// Event is the event being reduced. It and the Values taken from it alias
// the host's event buffer and are valid only during the handler call; the
// strings its methods return are copies and may be kept.
type Event struct {
	seq, pseq uint64
	time      int64
	producer  []byte
	typ       string
	payload   Value
}

// Seq is the event's global sequence number.
func (e Event) Seq() uint64 { return e.seq }

// Time is when the event was accepted, in Unix nanoseconds (also what
// time.Now returns during the event).
func (e Event) Time() int64 { return e.time }

// PSeq is the producer's sequence number of the event.
func (e Event) PSeq() uint64 { return e.pseq }

// Producer names who published the event.
func (e Event) Producer() string { return newString(e.producer) }

// Type is the event type, for example "todo/add".
func (e Event) Type() string { return e.typ }

// Payload is the event's body.
func (e Event) Payload() Value { return e.payload }

// Get returns the payload value at a JSON Pointer ("" is the whole payload).
func (e Event) Get(path string) Value { return e.payload.Get(path) }

// Has reports whether the payload is a map with the key.
func (e Event) Has(key string) bool { return e.payload.Key(key).Exists() }

// Str returns the payload's string field key, or "" if it is missing or not
// a string.
func (e Event) Str(key string) string {
	v := e.payload.key(key)
	if t, ok := shortText(v.b); ok { // in line: one call less
		return newString(t)
	}
	return v.Str()
}

// Int returns the payload's integer field key (a float with an integral
// value counts), or 0.
func (e Event) Int(key string) int64 { return e.payload.Key(key).Int() }

// Float returns the payload's number field key, or 0.
func (e Event) Float(key string) float64 { return e.payload.Key(key).Float() }

// Bool returns the payload's boolean field key, or false.
func (e Event) Bool(key string) bool { return e.payload.Key(key).Bool() }

// Error is returned by State methods when the host refuses a call. It wraps
// the abi.Status, so errors.Is(err, abi.StatusTypeMismatch) works.
type Error struct {
	Op     string     // "set", "delete" or "encode"
	Path   string     // the path of the call
	Status abi.Status // what the host answered
}

// Error implements error.
func (e *Error) Error() string {
	return "nodb: " + e.Op + " " + e.Path + ": " + e.Status.Error()
}

// Unwrap returns the status.
func (e *Error) Unwrap() error { return e.Status }

// State is the view's state, owned by the host. Paths are JSON Pointers:
// "" is the root (always a map), "/todos/a1/done" the key "done" of the map
// at "/todos/a1". Use Escape for keys that may contain '/' or '~'.
type State struct {
	reader        // state_get with a buffer grown on demand
	enc    []byte // encoding buffer for Set
}

// reader reads values from the host into a buffer it reuses: the view's
// own state (input "") or a cascade's input.
type reader struct {
	input string
	buf   []byte
}

// raw reads the value at path into the shared buffer.
func (r *reader) raw(path string) ([]byte, bool) {
	if cap(r.buf) == 0 {
		r.buf = make([]byte, 4096)
	}
	for {
		var n int32
		if r.input == "" {
			n = hostGet(path, r.buf[:cap(r.buf)])
		} else {
			n = hostInputGet(r.input, path, r.buf[:cap(r.buf)])
		}
		if n < 0 {
			return nil, false
		}
		if int(n) <= cap(r.buf) {
			return r.buf[:n], true
		}
		r.buf = make([]byte, int(n)+int(n)/4)
	}
}

// Get returns a copy of the value at path.
func (s *State) Get(path string) (Value, bool) {
	b, ok := s.raw(path)
	if !ok {
		return Value{}, false
	}
	return Value{b: append([]byte(nil), b...)}, true
}

// View returns the value at path without copying it, or Missing if there is
// none: one host call where Has and a Get* would make two. The Value is
// valid until the next read of the state (Get, View, Has, GetStr, ...).
func (s *State) View(path string) Value {
	b, _ := s.raw(path)
	return Value{b: b}
}

// Has reports whether there is a value at path. It asks the host with
// state_has: nothing is encoded or copied, so it costs the same for a map of
// a million entries as for a boolean.
func (s *State) Has(path string) bool { return hostHas(path) == 0 }

// GetStr returns the string at path, or "" if missing or not a string.
func (s *State) GetStr(path string) string {
	b, _ := s.raw(path)
	return Value{b: b}.Str()
}

// GetInt returns the integer at path, or 0.
func (s *State) GetInt(path string) int64 {
	b, _ := s.raw(path)
	return Value{b: b}.Int()
}

// GetFloat returns the number at path, or 0.
func (s *State) GetFloat(path string) float64 {
	b, _ := s.raw(path)
	return Value{b: b}.Float()
}

// GetBool returns the boolean at path, or false.
func (s *State) GetBool(path string) bool {
	b, _ := s.raw(path)
	return Value{b: b}.Bool()
}

// Keys returns the keys of the map at path in the host's order (sorted:
// shorter keys first, then bytewise), or nil if there is no map there.
func (s *State) Keys(path string) []string {
	b, _ := s.raw(path)
	return Value{b: b}.Keys()
}

// Len returns the number of entries of the map or array at path, or 0.
func (s *State) Len(path string) int {
	b, _ := s.raw(path)
	return Value{b: b}.Len()
}

// Set stores v at path, creating missing intermediate maps. v may be nil,
// bool, any integer or float type, string, Value, the result of Map or List,
// JSON, a Marshaler, []any, []string, []int, []int64, []float64, []bool,
// map[string]any, map[string]string, map[string]int, map[string]bool or
// map[string]int64 (Go maps are written with sorted keys).
//
// Inside WebAssembly, converting a value to any costs an allocation for
// most types (not for bools, small integers or constants); SetStr, SetInt,
// SetFloat, SetBool and SetMap avoid it.
func (s *State) Set(path string, v any) error {
	enc, err := AppendCBOR(s.enc[:0], v)
	s.enc = enc
	if err != nil {
		return err
	}
	return s.put(path)
}

// SetMap stores the map Map(kv...) at path without building the MapValue:
// alternating string keys and values of the types Set takes.
func (s *State) SetMap(path string, kv ...any) error {
	enc, err := MapValue(kv).AppendCBOR(s.enc[:0])
	s.enc = enc
	if err != nil {
		return err
	}
	return s.put(path)
}

// SetFields stores at path the map of the fields, in their order:
// SetFields(p, StrField("text", t), BoolField("done", false)) stores what
// SetMap(p, "text", t, "done", false) does. Fields hold their values
// without an interface, so nothing is allocated: inside WebAssembly,
// SetMap's conversion of a non-constant string (or most other values) to
// any costs a heap allocation.
func (s *State) SetFields(path string, fields ...Field) error {
	enc, err := appendFields(s.enc[:0], fields)
	s.enc = enc
	if err != nil {
		return err
	}
	return s.put(path)
}

// SetStr stores the string v at path; it is Set(path, v) without the
// conversion to any.
func (s *State) SetStr(path, v string) error {
	s.enc = appendText(s.enc[:0], v)
	return s.put(path)
}

// SetInt stores the integer v at path; it is Set(path, v) without the
// conversion to any.
func (s *State) SetInt(path string, v int64) error {
	s.enc = abi.AppendInt(s.enc[:0], v)
	return s.put(path)
}

// SetFloat stores the number v at path (NaN and infinities are
// ErrUnsupported); it is Set(path, v) without the conversion to any.
func (s *State) SetFloat(path string, v float64) error {
	enc, err := appendFloat(s.enc[:0], v)
	s.enc = enc
	if err != nil {
		return err
	}
	return s.put(path)
}

// SetBool stores the boolean v at path; it is Set(path, v) under a name
// that matches GetBool.
func (s *State) SetBool(path string, v bool) error {
	s.enc = abi.AppendBool(s.enc[:0], v)
	return s.put(path)
}

// put stores the encoded value s.enc at path.
func (s *State) put(path string) error {
	if st := abi.Status(hostSet(path, s.enc)); st != abi.StatusOK {
		return &Error{Op: "set", Path: path, Status: st}
	}
	return nil
}

// Delete removes the value at path. Deleting a missing value is not an error.
func (s *State) Delete(path string) error {
	st := abi.Status(hostDelete(path))
	if st != abi.StatusOK && st != abi.StatusNotFound {
		return &Error{Op: "delete", Path: path, Status: st}
	}
	return nil
}

// Log levels for LogAt.
const (
	LevelDebug = abi.LevelDebug
	LevelInfo  = abi.LevelInfo
	LevelWarn  = abi.LevelWarn
	LevelError = abi.LevelError
)

// Log writes an informational message to the plugin's log (rate limited by
// the host).
func Log(msg string) { hostLog(abi.LevelInfo, msg) }

// LogAt writes a message at a level (LevelDebug ... LevelError).
func LogAt(level int, msg string) { hostLog(int32(level), msg) }

// ErrUnsupported is wrapped by AppendCBOR for values it cannot encode.
var ErrUnsupported = errors.New("nodb: unsupported value")
