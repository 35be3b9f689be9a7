// Package wire is nodb's client protocol, version 1: the messages that cross
// a WebSocket (or the HTTP publish endpoint) between a nodb host and its
// clients, and their two encodings, JSON (subprotocol nodb.v1.json, text
// frames) and CBOR (nodb.v1.cbor, binary frames). The prose specification is
// abi/PROTOCOL.md; this package is its executable form, shared by the host and
// the Go client SDK.
//
// Decoding is strict and explains itself: every error says which field was
// wrong and why, so a client author can fix the sender.
package wire

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/nodb-dev/nodb/abi"
)

// Subprotocol names offered in Sec-WebSocket-Protocol.
const (
	SubprotocolJSON = "nodb.v1.json"
	SubprotocolCBOR = "nodb.v1.cbor"
)

// ProtocolVersion is the version announced in the hello message.
const ProtocolVersion = 1

// Limits of the protocol.
const (
	// MaxSafeInt is the largest integer carried in a sequence, pseq or id:
	// 2^53-1, the largest integer a JavaScript Number holds exactly.
	MaxSafeInt = 1<<53 - 1
	// MaxNameLen is the maximum length in bytes of a producer or event type.
	MaxNameLen = 256
	// DefaultMaxFrame is the default limit on one frame or HTTP body: 1 MiB.
	DefaultMaxFrame = 1 << 20
)

// Message types.
const (
	TypeHello        = "hello"
	TypePublish      = "publish"
	TypeAck          = "ack"
	TypeError        = "error"
	TypePing         = "ping"
	TypePong         = "pong"
	TypeSubscribe    = "subscribe"
	TypeUnsubscribe  = "unsubscribe"
	TypeSnapshot     = "snapshot"
	TypePatch        = "patch"
	TypeProgress     = "progress"
	TypeSubscribed   = "subscribed"
	TypeUnsubscribed = "unsubscribed"
)

// Error codes carried in error messages.
const (
	CodeBadRequest   = "bad_request"
	CodeUnknownType  = "unknown_type"
	CodePSeqGap      = "pseq_gap"
	CodeUnavailable  = "unavailable"
	CodeTooLarge     = "too_large"
	CodeNotFound     = "not_found"
	CodeForbidden    = "forbidden"
	CodeUnauthorized = "unauthorized"
)

// Event is what a producer publishes: an intention, recorded as history.
type Event struct {
	// Producer names the sender; with PSeq it makes the event unique.
	Producer string `json:"producer" cbor:"producer"`
	// PSeq is the producer's own sequence number, 1 for its first event.
	PSeq uint64 `json:"pseq" cbor:"pseq"`
	// Type is the event type, e.g. "todo/add".
	Type string `json:"type" cbor:"type"`
	// Payload is the event body as JSON text; "null" when absent.
	Payload []byte `json:"payload" cbor:"-"`
}

// Validate checks the rules of abi/PROTOCOL.md that decoding alone does not:
// names not empty, not too long, valid UTF-8 without control characters,
// pseq in 1..2^53-1, and a payload that the host can hand to reducers (an
// event frame, abi.AppendFrame: nesting at most abi.MaxDepth deep, numbers
// within the float64 range, the frame at most abi.MaxFrameSize). Payload
// must already be valid JSON.
func (e *Event) Validate() error {
	if err := checkName("producer", e.Producer); err != nil {
		return err
	}
	if err := checkName("type", e.Type); err != nil {
		return err
	}
	if e.PSeq == 0 {
		return errors.New(`field "pseq" must be at least 1 (a producer's first event has pseq 1)`)
	}
	if e.PSeq > MaxSafeInt {
		return fmt.Errorf(`field "pseq" is %d, over the maximum 2^53-1`, e.PSeq)
	}
	return checkFrame(e)
}

// frameBufs holds the buffers checkFrame builds frames in.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// checkFrame checks that the event converts to an ABI event frame, as the
// host does for every reducer that consumes its type: an event that does
// not would halt those views at it, for good, since the log keeps it.
func checkFrame(e *Event) error {
	bp := frameBufs.Get().(*[]byte)
	b, err := abi.AppendFrame((*bp)[:0], 0, 0, e.PSeq, e.Producer, e.Type, e.Payload)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		frameBufs.Put(bp)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, abi.ErrJSON):
		return fmt.Errorf(`field "payload" cannot be given to reducers: it must nest at most %d deep and hold no number beyond the float64 range (about 1.8e308)`, abi.MaxDepth)
	}
	return fmt.Errorf(`field "payload" cannot be given to reducers: %v`, err)
}

func checkName(field, s string) error {
	if s == "" {
		return fmt.Errorf("field %q is missing or empty", field)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("field %q is %d bytes long, over the limit of %d", field, len(s), MaxNameLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("field %q is not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("field %q contains control character %U", field, r)
		}
	}
	return nil
}

// Ack is the server's reply to an accepted publish.
type Ack struct {
	// Seq is the global sequence number of the event.
	Seq uint64 `json:"seq" cbor:"seq"`
	// Duplicate is true when the event had been accepted before; Seq is then
	// the sequence it was given the first time.
	Duplicate bool `json:"duplicate" cbor:"duplicate"`
}

// Error is an error reply. It implements error so clients can return it.
type Error struct {
	// Code is one of the Code constants.
	Code string `json:"code" cbor:"code"`
	// Message says what was wrong and what to do.
	Message string `json:"error" cbor:"error"`
	// ExpectedPSeq is set with CodePSeqGap: the pseq the host wants next.
	ExpectedPSeq uint64 `json:"expected_pseq,omitempty" cbor:"expected_pseq,omitempty"`
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Code == "" {
		return "nodb: " + e.Message
	}
	return "nodb: " + e.Code + ": " + e.Message
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Hello is the first message the server sends on every connection.
type Hello struct {
	Protocol int    `json:"protocol" cbor:"protocol"`
	Server   string `json:"server" cbor:"server"`
	Version  string `json:"version" cbor:"version"`
	MaxFrame int    `json:"max_frame" cbor:"max_frame"`
	Head     uint64 `json:"head" cbor:"head"`
}
