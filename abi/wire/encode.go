package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// Reply is any message a server sends. Type selects which fields matter.
type Reply struct {
	Type string `json:"type" cbor:"type"`
	ID   uint64 `json:"id,omitempty" cbor:"id,omitempty"`
	// Ack fields.
	Seq       uint64 `json:"seq,omitempty" cbor:"seq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty" cbor:"duplicate,omitempty"`
	// Error fields.
	Code         string `json:"code,omitempty" cbor:"code,omitempty"`
	Error        string `json:"error,omitempty" cbor:"error,omitempty"`
	ExpectedPSeq uint64 `json:"expected_pseq,omitempty" cbor:"expected_pseq,omitempty"`
	// Hello fields.
	Protocol int    `json:"protocol,omitempty" cbor:"protocol,omitempty"`
	Server   string `json:"server,omitempty" cbor:"server,omitempty"`
	Version  string `json:"version,omitempty" cbor:"version,omitempty"`
	MaxFrame int    `json:"max_frame,omitempty" cbor:"max_frame,omitempty"`
	Head     uint64 `json:"head,omitempty" cbor:"head,omitempty"`
	// Subscription fields (snapshot, patch).
	View  string          `json:"view,omitempty" cbor:"view,omitempty"`
	Reset bool            `json:"reset,omitempty" cbor:"reset,omitempty"`
	State json.RawMessage `json:"state,omitempty" cbor:"-"`
	Ops   json.RawMessage `json:"ops,omitempty" cbor:"-"`
}

// AppendAck appends an ack message in format f to buf. It is the hot path of
// publishing and allocates nothing for JSON.
func AppendAck(f Format, buf []byte, id uint64, a Ack) []byte {
	if f == CBOR {
		return mustCBOR(buf, &Reply{Type: TypeAck, ID: id, Seq: a.Seq, Duplicate: a.Duplicate})
	}
	buf = append(buf, `{"type":"ack"`...)
	if id != 0 {
		buf = append(buf, `,"id":`...)
		buf = strconv.AppendUint(buf, id, 10)
	}
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendUint(buf, a.Seq, 10)
	if a.Duplicate {
		buf = append(buf, `,"duplicate":true}`...)
	} else {
		buf = append(buf, `,"duplicate":false}`...)
	}
	return buf
}

// AppendError appends an error message for request id in format f to buf.
func AppendError(f Format, buf []byte, id uint64, e *Error) []byte {
	return AppendReply(f, buf, &Reply{Type: TypeError, ID: id, Code: e.Code, Error: e.Message, ExpectedPSeq: e.ExpectedPSeq})
}

// AppendReply appends any reply in format f to buf.
func AppendReply(f Format, buf []byte, r *Reply) []byte {
	if f == CBOR {
		return mustCBOR(buf, r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("wire: cannot encode reply: %v", err))
	}
	return append(buf, b...)
}

// cborReply carries the raw JSON fields of a Reply as CBOR items.
type cborReply struct {
	Reply
	StateItem cbor.RawMessage `cbor:"state,omitempty"`
	OpsItem   cbor.RawMessage `cbor:"ops,omitempty"`
}

func mustCBOR(buf []byte, r *Reply) []byte {
	var b []byte
	var err error
	if r.State == nil && r.Ops == nil {
		b, err = cborEnc.Marshal(r)
	} else {
		cr := cborReply{Reply: *r}
		if r.State != nil {
			if cr.StateItem, err = JSONToCBOR(r.State); err != nil {
				panic(fmt.Sprintf("wire: cannot encode state: %v", err))
			}
		}
		if r.Ops != nil {
			if cr.OpsItem, err = JSONToCBOR(r.Ops); err != nil {
				panic(fmt.Sprintf("wire: cannot encode ops: %v", err))
			}
		}
		b, err = cborEnc.Marshal(&cr)
	}
	if err != nil {
		panic(fmt.Sprintf("wire: cannot encode reply: %v", err))
	}
	return append(buf, b...)
}

// JSONToCBOR converts JSON text (one value) to one deterministic CBOR data
// item.
// Integers stay integers; numbers with a fraction or exponent become floats.
func JSONToCBOR(j []byte) ([]byte, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("wire: data after the JSON value")
	}
	v, err := numbersToCBOR(v)
	if err != nil {
		return nil, err
	}
	return cborEnc.Marshal(v)
}

func numbersToCBOR(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil
		}
		return strconv.ParseFloat(string(x), 64)
	case []any:
		for i := range x {
			e, err := numbersToCBOR(x[i])
			if err != nil {
				return nil, err
			}
			x[i] = e
		}
	case map[string]any:
		for k := range x {
			e, err := numbersToCBOR(x[k])
			if err != nil {
				return nil, err
			}
			x[k] = e
		}
	}
	return v, nil
}

// DecodeReply decodes one server message in format f (used by clients).
func DecodeReply(f Format, data []byte, r *Reply) error {
	*r = Reply{}
	if f == CBOR {
		var cr cborReply
		if err := cborDec.Unmarshal(data, &cr); err != nil {
			return fmt.Errorf("wire: malformed CBOR reply: %w", err)
		}
		*r = cr.Reply
		var err error
		if cr.StateItem != nil {
			if r.State, err = CBORToJSON(cr.StateItem); err != nil {
				return fmt.Errorf("wire: reply state: %w", err)
			}
		}
		if cr.OpsItem != nil {
			if r.Ops, err = CBORToJSON(cr.OpsItem); err != nil {
				return fmt.Errorf("wire: reply ops: %w", err)
			}
		}
		return nil
	}
	if err := json.Unmarshal(data, r); err != nil {
		return fmt.Errorf("wire: malformed JSON reply: %w", err)
	}
	return nil
}

// EncodeRequest encodes a client message in format f (used by clients).
func EncodeRequest(f Format, r *Request) ([]byte, error) {
	m := map[string]any{"type": r.Type}
	if r.ID != 0 {
		m["id"] = r.ID
	}
	switch r.Type {
	case TypePublish:
		payload := r.Event.Payload
		if len(payload) == 0 {
			payload = nullJSON
		}
		ev := map[string]any{"producer": r.Event.Producer, "pseq": r.Event.PSeq, "type": r.Event.Type}
		if f == CBOR {
			item, err := JSONToCBOR(payload)
			if err != nil {
				return nil, fmt.Errorf("wire: payload is not valid JSON: %w", err)
			}
			ev["payload"] = cbor.RawMessage(item)
		} else {
			if !json.Valid(payload) {
				return nil, fmt.Errorf("wire: payload is not valid JSON")
			}
			ev["payload"] = json.RawMessage(payload)
		}
		m["event"] = ev
	case TypeSubscribe, TypeUnsubscribe:
		m["view"] = r.View
		if r.HasSince {
			m["since"] = r.Since
		}
	}
	if f == CBOR {
		return cborEnc.Marshal(m)
	}
	return json.Marshal(m)
}

// AppendViewMessage appends a snapshot, patch or progress message in format
// f. body is the state (snapshot) or the ops array (patch), already encoded
// in f (JSON text or one CBOR item); it is nil for progress. id is the
// subscribe request's id for a snapshot and 0 for patch and progress, whose
// bytes are shared by every subscriber.
func AppendViewMessage(f Format, buf []byte, typ string, id uint64, view string, seq uint64, reset bool, body []byte) []byte {
	if f == CBOR {
		n := 3 // type, view, seq
		if id != 0 {
			n++
		}
		if reset {
			n++
		}
		if body != nil {
			n++
		}
		// Core deterministic order: shorter keys first, then bytewise.
		buf = append(buf, 0xa0|byte(n))
		if id != 0 {
			buf = appendCBORText(buf, "id")
			buf = appendCBORUint(buf, id)
		}
		if body != nil && typ == TypePatch {
			buf = appendCBORText(buf, "ops")
			buf = append(buf, body...)
		}
		buf = appendCBORText(buf, "seq")
		buf = appendCBORUint(buf, seq)
		buf = appendCBORText(buf, "type")
		buf = appendCBORText(buf, typ)
		buf = appendCBORText(buf, "view")
		buf = appendCBORText(buf, view)
		if reset {
			buf = appendCBORText(buf, "reset")
			buf = append(buf, 0xf5)
		}
		if body != nil && typ != TypePatch {
			buf = appendCBORText(buf, "state")
			buf = append(buf, body...)
		}
		return buf
	}
	buf = append(buf, `{"type":"`...)
	buf = append(buf, typ...)
	buf = append(buf, '"')
	if id != 0 {
		buf = append(buf, `,"id":`...)
		buf = strconv.AppendUint(buf, id, 10)
	}
	buf = append(buf, `,"view":`...)
	buf = strconv.AppendQuote(buf, view)
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendUint(buf, seq, 10)
	if reset {
		buf = append(buf, `,"reset":true`...)
	}
	if body != nil {
		if typ == TypePatch {
			buf = append(buf, `,"ops":`...)
		} else {
			buf = append(buf, `,"state":`...)
		}
		buf = append(buf, body...)
	}
	return append(buf, '}')
}

func appendCBORUint(buf []byte, v uint64) []byte { return appendCBORHead(buf, 0, v) }

func appendCBORText(buf []byte, s string) []byte {
	buf = appendCBORHead(buf, 3, uint64(len(s)))
	return append(buf, s...)
}

func appendCBORHead(buf []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(buf, m|byte(v))
	case v <= 0xff:
		return append(buf, m|24, byte(v))
	case v <= 0xffff:
		return append(buf, m|25, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(buf, m|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(buf, m|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
