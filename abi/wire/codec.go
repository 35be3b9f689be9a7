package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Format is one of the two encodings of the protocol.
type Format uint8

const (
	// JSON is subprotocol nodb.v1.json: text frames holding JSON objects.
	JSON Format = iota
	// CBOR is subprotocol nodb.v1.cbor: binary frames holding CBOR maps.
	CBOR
)

// String returns the subprotocol name of f.
func (f Format) String() string {
	if f == CBOR {
		return SubprotocolCBOR
	}
	return SubprotocolJSON
}

// FormatOf maps a subprotocol name to its Format.
func FormatOf(subprotocol string) (Format, bool) {
	switch subprotocol {
	case SubprotocolJSON:
		return JSON, true
	case SubprotocolCBOR:
		return CBOR, true
	}
	return 0, false
}

// Request is any message a client sends. Type selects which fields matter.
type Request struct {
	// Type is the message type, e.g. TypePublish.
	Type string
	// ID is the client's correlation id, copied into the reply; 0 = none.
	ID uint64
	// Event is the event of a publish.
	Event Event
	// View is the view of a subscribe or unsubscribe.
	View string
	// Since, with HasSince, asks a subscribe to resume after that seq.
	Since    uint64
	HasSince bool
}

// DecodeError is a malformed message. Message says what was wrong; ID is the
// request id when it could be read, so the error reply can carry it.
type DecodeError struct {
	ID      uint64
	Message string
}

// Error implements error.
func (e *DecodeError) Error() string { return "wire: " + e.Message }

func decodeErr(id uint64, format string, args ...any) *DecodeError {
	return &DecodeError{ID: id, Message: fmt.Sprintf(format, args...)}
}

type jsonRequest struct {
	Type  *string     `json:"type"`
	ID    json.Number `json:"id"`
	Event *jsonEvent  `json:"event"`
	View  string      `json:"view"`
	Since json.Number `json:"since"`
}

type jsonEvent struct {
	Producer string          `json:"producer"`
	PSeq     json.Number     `json:"pseq"`
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload"`
}

var nullJSON = []byte("null")

// DecodeRequest decodes one client message in format f. It checks the shape
// of the message (types of fields, integer ranges, UTF-8, a well-formed
// payload) and, for a publish, Event.Validate. Errors are *DecodeError.
func DecodeRequest(f Format, data []byte, r *Request) error {
	if f == CBOR {
		return decodeCBORRequest(data, r)
	}
	return decodeJSONRequest(data, r)
}

func decodeJSONRequest(data []byte, r *Request) error {
	if decodePublishFast(data, r) {
		return nil
	}
	return decodeJSONRequestFull(data, r)
}

// decodeJSONRequestFull is the reflective decoder: it accepts every valid
// message and explains every invalid one.
func decodeJSONRequestFull(data []byte, r *Request) error {
	*r = Request{}
	if !utf8.Valid(data) {
		return decodeErr(0, "message is not valid UTF-8 (JSON text must be UTF-8)")
	}
	var jr jsonRequest
	if err := json.Unmarshal(data, &jr); err != nil {
		return decodeErr(0, "malformed JSON message: %s", jsonErrText(err))
	}
	id, err := parseSafeUint("id", jr.ID, 0)
	if err != nil {
		return decodeErr(0, "%s", err)
	}
	r.ID = id
	if jr.Type == nil || *jr.Type == "" {
		return decodeErr(id, `field "type" is missing: every message needs a "type"`)
	}
	r.Type = *jr.Type
	switch r.Type {
	case TypePublish:
		if jr.Event == nil {
			return decodeErr(id, `publish needs an "event" object {producer, pseq, type, payload}`)
		}
		pseq, err := parseSafeUint("event.pseq", jr.Event.PSeq, 1)
		if err != nil {
			return decodeErr(id, "%s", err)
		}
		r.Event = Event{Producer: jr.Event.Producer, PSeq: pseq, Type: jr.Event.Type, Payload: jr.Event.Payload}
		if len(r.Event.Payload) == 0 {
			r.Event.Payload = nullJSON
		}
		if err := r.Event.Validate(); err != nil {
			return decodeErr(id, "event: %s", err)
		}
	case TypeSubscribe, TypeUnsubscribe:
		r.View = jr.View
		if r.View == "" {
			return decodeErr(id, `%s needs a "view" name`, r.Type)
		}
		if jr.Since != "" {
			s, err := parseSafeUint("since", jr.Since, 0)
			if err != nil {
				return decodeErr(id, "%s", err)
			}
			r.Since, r.HasSince = s, true
		}
	}
	return nil
}

// DecodeEvent decodes a bare JSON event object, the body of POST /v1/events.
func DecodeEvent(data []byte, e *Event) error {
	if !utf8.Valid(data) {
		return decodeErr(0, "body is not valid UTF-8")
	}
	var je jsonEvent
	if err := json.Unmarshal(data, &je); err != nil {
		return decodeErr(0, "malformed JSON event: %s", jsonErrText(err))
	}
	pseq, err := parseSafeUint("pseq", je.PSeq, 1)
	if err != nil {
		return decodeErr(0, "%s", err)
	}
	*e = Event{Producer: je.Producer, PSeq: pseq, Type: je.Type, Payload: je.Payload}
	if len(e.Payload) == 0 {
		e.Payload = nullJSON
	}
	if err := e.Validate(); err != nil {
		return decodeErr(0, "%s", err)
	}
	return nil
}

// parseSafeUint reads an optional integer field. missing is the value
// reported when the field is absent and 0 is allowed; min 1 makes it required.
func parseSafeUint(field string, n json.Number, min uint64) (uint64, error) {
	if n == "" {
		if min > 0 {
			return 0, fmt.Errorf("field %q is missing: it must be an integer from %d to 2^53-1", field, min)
		}
		return 0, nil
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil || v > MaxSafeInt || v < min {
		return 0, fmt.Errorf("field %q is %s: it must be an integer from %d to 2^53-1", field, n, min)
	}
	return v, nil
}

func jsonErrText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q must be a %s, not a JSON %s", te.Field, goTypeName(te.Type.String()), te.Value)
		}
		return fmt.Sprintf("a message must be a JSON object, not a JSON %s", te.Value)
	}
	return err.Error()
}

func goTypeName(t string) string {
	switch t {
	case "json.Number", "uint64":
		return "number"
	case "*string", "string":
		return "string"
	case "*wire.jsonEvent":
		return "object"
	}
	return t
}

// cborRequest mirrors jsonRequest for CBOR.
type cborRequest struct {
	Type  *string    `cbor:"type"`
	ID    any        `cbor:"id"`
	Event *cborEvent `cbor:"event"`
	View  string     `cbor:"view"`
	Since any        `cbor:"since"`
}

type cborEvent struct {
	Producer string          `cbor:"producer"`
	PSeq     any             `cbor:"pseq"`
	Type     string          `cbor:"type"`
	Payload  cbor.RawMessage `cbor:"payload"`
}

var (
	cborDec cbor.DecMode
	anyDec  cbor.DecMode
	cborEnc cbor.EncMode
)

func init() {
	var err error
	cborDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  64,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
		IndefLength:      cbor.IndefLengthAllowed,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
		IntDec:           cbor.IntDecConvertNone,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	anyDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  64,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
		DefaultMapType:   mapStringAnyType,
		IntDec:           cbor.IntDecConvertNone,
		BigIntDec:        cbor.BigIntDecodeValue,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	cborEnc, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
}

func decodeCBORRequest(data []byte, r *Request) error {
	*r = Request{}
	var cr cborRequest
	if err := cborDec.Unmarshal(data, &cr); err != nil {
		return decodeErr(0, "malformed CBOR message: %s", err)
	}
	id, err := cborUint("id", cr.ID, 0)
	if err != nil {
		return decodeErr(0, "%s", err)
	}
	r.ID = id
	if cr.Type == nil || *cr.Type == "" {
		return decodeErr(id, `field "type" is missing: every message needs a "type"`)
	}
	r.Type = *cr.Type
	switch r.Type {
	case TypePublish:
		if cr.Event == nil {
			return decodeErr(id, `publish needs an "event" map {producer, pseq, type, payload}`)
		}
		pseq, err := cborUint("event.pseq", cr.Event.PSeq, 1)
		if err != nil {
			return decodeErr(id, "%s", err)
		}
		payload, err := CBORToJSON(cr.Event.Payload)
		if err != nil {
			return decodeErr(id, "event.payload: %s", err)
		}
		r.Event = Event{Producer: cr.Event.Producer, PSeq: pseq, Type: cr.Event.Type, Payload: payload}
		if err := r.Event.Validate(); err != nil {
			return decodeErr(id, "event: %s", err)
		}
	case TypeSubscribe, TypeUnsubscribe:
		r.View = cr.View
		if r.View == "" {
			return decodeErr(id, `%s needs a "view" name`, r.Type)
		}
		if cr.Since != nil {
			s, err := cborUint("since", cr.Since, 0)
			if err != nil {
				return decodeErr(id, "%s", err)
			}
			r.Since, r.HasSince = s, true
		}
	}
	return nil
}

func cborUint(field string, v any, min uint64) (uint64, error) {
	var u uint64
	switch x := v.(type) {
	case nil:
		if min > 0 {
			return 0, fmt.Errorf("field %q is missing: it must be an integer from %d to 2^53-1", field, min)
		}
		return 0, nil
	case uint64:
		u = x
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("field %q is %d: it must be an integer from %d to 2^53-1", field, x, min)
		}
		u = uint64(x)
	default:
		return 0, fmt.Errorf("field %q must be an unsigned integer, not %T", field, v)
	}
	if u > MaxSafeInt || u < min {
		return 0, fmt.Errorf("field %q is %d: it must be an integer from %d to 2^53-1", field, u, min)
	}
	return u, nil
}

var mapStringAnyType = reflect.TypeOf(map[string]any(nil))

// CBORToJSON converts one CBOR data item to JSON text. Only items with a JSON
// meaning are accepted: maps with text keys, arrays, text strings, integers,
// finite floats, true, false and null. Byte strings, tags, undefined and
// other simple values, NaN and infinities are refused with an error naming
// the path. An absent item (empty input) is JSON null.
func CBORToJSON(item []byte) ([]byte, error) {
	if len(item) == 0 {
		return nullJSON, nil
	}
	var v any
	if err := anyDec.Unmarshal(item, &v); err != nil {
		return nil, fmt.Errorf("not a JSON-compatible CBOR item: %s", err)
	}
	v, err := jsonCompatible(v, "")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cannot convert to JSON: %s", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// jsonCompatible checks that v, decoded from CBOR, has a JSON form, and
// returns it with its floats as jsonFloats (replaced in place in maps and
// slices), so that they stay floats in JSON.
func jsonCompatible(v any, path string) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, uint64, int64:
		return v, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("at %q: %v has no JSON form", pathOrRoot(path), x)
		}
		return jsonFloat(x), nil
	case float32:
		return jsonCompatible(float64(x), path)
	case []any:
		for i, e := range x {
			var err error
			if x[i], err = jsonCompatible(e, path+"/"+strconv.Itoa(i)); err != nil {
				return nil, err
			}
		}
		return x, nil
	case map[string]any:
		for k, e := range x {
			c, err := jsonCompatible(e, path+"/"+k)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case []byte:
		return nil, fmt.Errorf("at %q: CBOR byte strings have no JSON form; send text (e.g. base64)", pathOrRoot(path))
	default:
		return nil, fmt.Errorf("at %q: CBOR item of Go type %T has no JSON form", pathOrRoot(path), v)
	}
}

// jsonFloat is a finite float64 written as JSON with a fraction or an
// exponent even when its value is integral (2.0, not 2): in nodb's data
// model, a JSON number without either is an integer (abi/ABI.md, 5.1).
type jsonFloat float64

// MarshalJSON writes f as encoding/json does, with ".0" appended when that
// has neither a fraction nor an exponent.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(float64(f))
	if err != nil || bytes.ContainsAny(b, ".eE") {
		return b, err
	}
	return append(b, ".0"...), nil
}

func pathOrRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
