// Package abi holds the guest ABI of nodb plugins, version 1: the names,
// numbers and byte layouts that the host (package plugins) and every guest SDK
// (sdk/guest/...) must agree on. The normative description is ABI.md in this
// directory; this package is its Go transcription plus the encoders and
// decoders both sides share (event frames, CBOR values, JSON Pointer paths).
//
// The package depends on the standard library only and is safe to compile to
// GOOS=wasip1 GOARCH=wasm: it uses no reflection and no fmt, so a guest that
// imports it stays small and fast.
package abi

// Version is the ABI version described by this package.
const Version = 1

// ModuleName is the Wasm import module of every host function of ABI v1.
const ModuleName = "nodb_v1"

// WASIModuleName is the import module of the WASI preview 1 functions the host
// provides (a deterministic, capability-free subset; see ABI.md).
const WASIModuleName = "wasi_snapshot_preview1"

// Host functions, imported by the guest from ModuleName. Signatures are given
// in Wasm types; every pointer is an offset into the guest's exported memory.
const (
	// FuncABIVersion is the version marker: () -> (). A plugin built for ABI
	// v1 must import it; a host that lacks it refuses the plugin at load.
	// It does nothing when called.
	FuncABIVersion = "abi_version_1"
	// FuncConsume declares an event type the plugin consumes:
	// (type_ptr i32, type_len i32) -> status i32. Only valid during
	// _initialize.
	FuncConsume = "consume"
	// FuncStateGet reads the value at a path:
	// (path_ptr, path_len, buf_ptr, buf_cap i32) -> i32. A result >= 0 is the
	// value's length in bytes; the value was written to buf only when the
	// result is <= buf_cap. A negative result is a Status.
	FuncStateGet = "state_get"
	// FuncStateHas reports whether there is a value at a path, in time
	// proportional to the path, not the value:
	// (path_ptr, path_len i32) -> status i32 (StatusOK or StatusNotFound).
	FuncStateHas = "state_has"
	// FuncStateSet writes a CBOR value at a path:
	// (path_ptr, path_len, val_ptr, val_len i32) -> status i32.
	FuncStateSet = "state_set"
	// FuncStateDelete removes the value at a path:
	// (path_ptr, path_len i32) -> status i32.
	FuncStateDelete = "state_delete"
	// FuncLog writes a message to the plugin's log:
	// (level i32, msg_ptr i32, msg_len i32) -> ().
	FuncLog = "log"
	// FuncSetError sets the message of the error the current nodb_reduce call
	// is about to return: (msg_ptr i32, msg_len i32) -> ().
	FuncSetError = "set_error"
	// FuncInput declares an upstream view the plugin reads, which makes it a
	// cascade: (name_ptr i32, name_len i32) -> status i32. Only valid during
	// _initialize; the order of the declarations is the order in which the
	// patches of one seq are delivered.
	FuncInput = "input"
	// FuncInputGet reads the value at a path of an input's state as of the
	// patch being reduced: (name_ptr, name_len, path_ptr, path_len, buf_ptr,
	// buf_cap i32) -> i32, with the results of FuncStateGet.
	FuncInputGet = "input_get"
)

// Cascades (ABI.md section 13).
const (
	// TypePatch is the event type of the frames a cascade receives: one
	// input's changes at one seq. The frame's producer is the input's name
	// and its payload a CBOR array of RFC 6902 operations, each a map with
	// "op" ("add", "remove" or "replace"), "path" and, except for remove,
	// "value".
	TypePatch = "nodb/patch"
	// MaxInputs bounds the inputs a cascade declares.
	MaxInputs = 16
	// MaxNameSize bounds a view name.
	MaxNameSize = 128
)

// ValidViewName reports whether name may name a view (and so a cascade's
// input): 1 to MaxNameSize bytes of ASCII letters, digits, '-', '_' and '.',
// not starting with '.'.
func ValidViewName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameSize || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Guest exports.
const (
	// ExportMemory is the guest's linear memory, exported under this name.
	ExportMemory = "memory"
	// ExportInitialize is the optional WASI reactor initializer: () -> ().
	// The host calls it once per instance, before any other export.
	ExportInitialize = "_initialize"
	// ExportBuffer returns a guest buffer for the next event frame:
	// (size i32) -> ptr i32. The buffer must hold at least size bytes and stay
	// valid (not move, not be freed) until the next call of ExportBuffer.
	ExportBuffer = "nodb_buffer"
	// ExportReduce reduces the event frame of frame_len bytes that the host
	// wrote at the start of the last buffer: (frame_len i32) -> status i32.
	ExportReduce = "nodb_reduce"
)

// Status is the result code of a host function or of nodb_reduce. Zero is
// success; host functions report failures as negative numbers. Status
// implements error so that State implementations can return (or wrap) one to
// choose the code the guest sees.
type Status int32

// Status codes of ABI v1.
const (
	// StatusOK means success.
	StatusOK Status = 0
	// StatusError is returned by nodb_reduce when the reducer rejects the
	// event; the message was set with set_error.
	StatusError Status = 1
	// StatusNotFound: no value at the path (state_get, state_delete).
	StatusNotFound Status = -1
	// StatusInvalidPath: the path is not a valid JSON Pointer, uses a
	// forbidden key (__proto__, constructor, prototype), or indexes an array
	// with something other than a valid index.
	StatusInvalidPath Status = -2
	// StatusInvalidValue: the value is not well-formed CBOR within the JSON
	// data model (see ABI.md, Values).
	StatusInvalidValue Status = -3
	// StatusTypeMismatch: the path goes through a value that is neither a map
	// nor an array, or sets the root to a non-map.
	StatusTypeMismatch Status = -4
	// StatusTooLarge: a limit was exceeded (path, value, state size).
	StatusTooLarge Status = -5
	// StatusBadState: the call is not allowed now (for example consume
	// after _initialize, or state_get during _initialize).
	StatusBadState Status = -6
	// StatusHost: the host failed (I/O, internal error). The current event
	// fails whatever the guest does next.
	StatusHost Status = -7
)

// Error implements error.
func (s Status) Error() string {
	switch s {
	case StatusOK:
		return "abi: ok"
	case StatusError:
		return "abi: reducer error"
	case StatusNotFound:
		return "abi: not found"
	case StatusInvalidPath:
		return "abi: invalid path"
	case StatusInvalidValue:
		return "abi: invalid value"
	case StatusTypeMismatch:
		return "abi: type mismatch"
	case StatusTooLarge:
		return "abi: too large"
	case StatusBadState:
		return "abi: call not allowed now"
	case StatusHost:
		return "abi: host error"
	}
	return "abi: status " + itoa(int64(s))
}

// Log levels for FuncLog.
const (
	LevelTrace = 0
	LevelDebug = 1
	LevelInfo  = 2
	LevelWarn  = 3
	LevelError = 4
)

// EpochSize is the number of sequence numbers per epoch. The host discards
// and re-creates a plugin's instance before the first event it reduces in a
// new epoch, so the guest's memory (and with it every runtime-internal random
// state) depends only on (view, epoch, events of the epoch so far). Snapshots
// are taken only at epoch boundaries.
const EpochSize = 4096

// Epoch returns the epoch of sequence number seq (seq >= 1): (seq-1)/EpochSize.
// Sequence 0 (no event yet) belongs to epoch 0.
func Epoch(seq uint64) uint64 {
	if seq == 0 {
		return 0
	}
	return (seq - 1) / EpochSize
}

// EpochStart returns the first sequence number of epoch e.
func EpochStart(e uint64) uint64 { return e*EpochSize + 1 }

// Limits of ABI v1. A host may be configured lower for memory and time, but
// never accepts more than these.
const (
	// MaxFrameSize bounds an event frame (header + producer + type + payload).
	MaxFrameSize = 16 << 20
	// MaxValueSize bounds a CBOR value passed to state_set or returned by
	// state_get.
	MaxValueSize = 16 << 20
	// MaxPathSize bounds a path in bytes.
	MaxPathSize = 4096
	// MaxDepth bounds the nesting of values and paths.
	MaxDepth = 256
	// MaxStateDepth bounds the nesting of a whole state: a state_set whose
	// path has n tokens puts its value under n containers, so n plus the
	// value's own nesting (0 for a scalar, 1 more than its deepest element
	// for an array or map) may be at most MaxStateDepth. Only a path of
	// MaxDepth tokens with a value MaxDepth+1 deep (an empty array or map
	// inside MaxDepth others) goes over. The host's state tree enforces it
	// (statetree.MaxDepth).
	MaxStateDepth = 512
	// MaxLogSize is the longest log message kept; longer ones are truncated.
	MaxLogSize = 4096
	// MaxErrorSize is the longest set_error message kept.
	MaxErrorSize = 4096
	// MaxTypeSize bounds an event type name.
	MaxTypeSize = 256
	// MaxConsumes bounds the number of consume declarations.
	MaxConsumes = 1024
)

// ConsumeAll, passed to consume, subscribes the plugin to every event type.
// A plugin that declares nothing also receives every event type.
const ConsumeAll = "*"

func itoa(v int64) string {
	var b [24]byte
	return string(appendInt(b[:0], v))
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		u := uint64(-v)
		if v == -1<<63 {
			u = 1 << 63
		}
		return appendUint(b, u)
	}
	return appendUint(b, uint64(v))
}

func appendUint(b []byte, u uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
