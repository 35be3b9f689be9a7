package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/nodb-dev/nodb/abi"
)

func TestDecodePublishJSON(t *testing.T) {
	var r Request
	err := DecodeRequest(JSON, []byte(`{"type":"publish","id":7,"event":{"producer":"p1","pseq":3,"type":"todo/add","payload":{"id":"a","text":"milk"}}}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != TypePublish || r.ID != 7 || r.Event.Producer != "p1" || r.Event.PSeq != 3 || r.Event.Type != "todo/add" {
		t.Fatalf("decoded %+v", r)
	}
	if string(r.Event.Payload) != `{"id":"a","text":"milk"}` {
		t.Fatalf("payload %s", r.Event.Payload)
	}
}

func TestDecodeMissingPayloadIsNull(t *testing.T) {
	var r Request
	if err := DecodeRequest(JSON, []byte(`{"type":"publish","event":{"producer":"p","pseq":1,"type":"x"}}`), &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Event.Payload) != "null" {
		t.Fatalf("payload %q", r.Event.Payload)
	}
}

func TestDecodeErrorsSayWhatIsWrong(t *testing.T) {
	cases := []struct {
		msg, want string
		id        uint64
	}{
		{`{`, "malformed JSON", 0},
		{`[1,2]`, "must be a JSON object", 0},
		{`{"id":5}`, `"type" is missing`, 5},
		{`{"type":"publish","id":2}`, `needs an "event"`, 2},
		{`{"type":"publish","id":2,"event":{"producer":"p","type":"t"}}`, `"event.pseq" is missing`, 2},
		{`{"type":"publish","event":{"producer":"p","pseq":-1,"type":"t"}}`, `"event.pseq" is -1`, 0},
		{`{"type":"publish","event":{"producer":"p","pseq":0,"type":"t"}}`, `"event.pseq" is 0`, 0},
		{`{"type":"publish","event":{"producer":"p","pseq":9007199254740992,"type":"t"}}`, `2^53-1`, 0},
		{`{"type":"publish","event":{"producer":"p","pseq":1.5,"type":"t"}}`, `"event.pseq" is 1.5`, 0},
		{`{"type":"publish","event":{"pseq":1,"type":"t"}}`, `"producer" is missing`, 0},
		{`{"type":"publish","event":{"producer":"p","pseq":1}}`, `"type" is missing`, 0},
		{`{"type":"publish","event":{"producer":"p","pseq":1,"type":"a\u0001b"}}`, `control character`, 0},
		{`{"type":"publish","event":{"producer":"` + strings.Repeat("x", 300) + `","pseq":1,"type":"t"}}`, `over the limit`, 0},
		{`{"type":"publish","id":-3}`, `"id" is -3`, 0},
		{"{\"type\":\"publish\",\"event\":{\"producer\":\"p\",\"pseq\":1,\"type\":\"\xff\"}}", "not valid UTF-8", 0},
	}
	for _, c := range cases {
		var r Request
		err := DecodeRequest(JSON, []byte(c.msg), &r)
		de, ok := err.(*DecodeError)
		if !ok {
			t.Errorf("%s: got %v, want a DecodeError", c.msg, err)
			continue
		}
		if !strings.Contains(de.Message, c.want) || de.ID != c.id {
			t.Errorf("%s: got %q (id %d), want it to contain %q (id %d)", c.msg, de.Message, de.ID, c.want, c.id)
		}
	}
}

func TestCBORRoundTrip(t *testing.T) {
	req := Request{Type: TypePublish, ID: 9, Event: Event{Producer: "p", PSeq: 4, Type: "t", Payload: []byte(`{"a":[1,2.5,"x",true,null],"b":{}}`)}}
	b, err := EncodeRequest(CBOR, &req)
	if err != nil {
		t.Fatal(err)
	}
	var got Request
	if err := DecodeRequest(CBOR, b, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != 9 || got.Event.PSeq != 4 || got.Event.Producer != "p" {
		t.Fatalf("got %+v", got)
	}
	var a, bb any
	json.Unmarshal(req.Event.Payload, &a)
	json.Unmarshal(got.Event.Payload, &bb)
	if ja, _ := json.Marshal(a); string(ja) != mustJSON(bb) {
		t.Fatalf("payload %s != %s", got.Event.Payload, req.Event.Payload)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestCBORRejectsNonJSONItems(t *testing.T) {
	for name, payload := range map[string]any{
		"bytes":  []byte{1, 2},
		"tag":    cbor.Tag{Number: 1, Content: 5},
		"intkey": map[int]string{1: "a"},
	} {
		item, _ := cbor.Marshal(payload)
		msg, _ := cbor.Marshal(map[string]any{"type": "publish", "event": map[string]any{"producer": "p", "pseq": 1, "type": "t", "payload": cbor.RawMessage(item)}})
		var r Request
		if err := DecodeRequest(CBOR, msg, &r); err == nil {
			t.Errorf("%s: accepted payload %x", name, item)
		}
	}
}

func TestAppendAckJSON(t *testing.T) {
	got := string(AppendAck(JSON, nil, 7, Ack{Seq: 42, Duplicate: true}))
	if got != `{"type":"ack","id":7,"seq":42,"duplicate":true}` {
		t.Fatal(got)
	}
	var r Reply
	if err := DecodeReply(JSON, []byte(got), &r); err != nil || r.Seq != 42 || !r.Duplicate || r.ID != 7 {
		t.Fatalf("%+v %v", r, err)
	}
	var c Reply
	if err := DecodeReply(CBOR, AppendAck(CBOR, nil, 7, Ack{Seq: 42}), &c); err != nil || c.Seq != 42 || c.Type != TypeAck {
		t.Fatalf("%+v %v", c, err)
	}
}

// FuzzDecodeRequest checks that no input crashes the decoders and that every
// accepted publish satisfies the protocol's rules.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(byte(0), []byte(`{"type":"publish","id":1,"event":{"producer":"p","pseq":1,"type":"t","payload":{"x":1}}}`))
	f.Add(byte(0), []byte(`{"type":"ping","id":3}`))
	f.Add(byte(0), []byte(`{"type":"subscribe","view":"todos","since":5}`))
	b, _ := EncodeRequest(CBOR, &Request{Type: TypePublish, ID: 2, Event: Event{Producer: "p", PSeq: 2, Type: "t", Payload: []byte(`[1,{"a":null}]`)}})
	f.Add(byte(1), b)
	f.Fuzz(func(t *testing.T, format byte, data []byte) {
		var r Request
		err := DecodeRequest(Format(format%2), data, &r)
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if r.Type == TypePublish {
			if err := r.Event.Validate(); err != nil {
				t.Fatalf("accepted invalid event: %v", err)
			}
			if !json.Valid(r.Event.Payload) {
				t.Fatalf("accepted payload that is not JSON: %q", r.Event.Payload)
			}
		}
	})
}

func TestViewMessagesDecode(t *testing.T) {
	for _, f := range []Format{JSON, CBOR} {
		state := []byte(`{"todos":{"a":{"done":false,"text":"x"}}}`)
		ops := []byte(`[{"op":"replace","path":"/todos/a/done","value":true}]`)
		if f == CBOR {
			state, _ = JSONToCBOR(state)
			ops, _ = JSONToCBOR(ops)
		}
		var r Reply
		if err := DecodeReply(f, AppendViewMessage(f, nil, TypeSnapshot, 5, "todos", 12, true, state), &r); err != nil {
			t.Fatal(err)
		}
		if r.Type != TypeSnapshot || r.ID != 5 || r.View != "todos" || r.Seq != 12 || !r.Reset || !strings.Contains(string(r.State), `"text":"x"`) {
			t.Fatalf("%v snapshot: %+v %s", f, r, r.State)
		}
		if err := DecodeReply(f, AppendViewMessage(f, nil, TypePatch, 0, "todos", 13, false, ops), &r); err != nil {
			t.Fatal(err)
		}
		if r.Type != TypePatch || r.ID != 0 || r.Seq != 13 || !strings.Contains(string(r.Ops), `"replace"`) {
			t.Fatalf("%v patch: %+v %s", f, r, r.Ops)
		}
		if f == CBOR {
			// The hand-written encoding is the core deterministic one.
			var m map[string]any
			b := AppendViewMessage(f, nil, TypeProgress, 0, "v", 99, false, nil)
			if err := cbor.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			again, _ := cborEnc.Marshal(m)
			if string(again) != string(b) {
				t.Fatalf("not deterministic CBOR: %x vs %x", b, again)
			}
		}
	}
}

// TestPayloadTheABICannotCarryIsRefused: a publish is refused when its
// payload is valid JSON that the ABI cannot hand to a reducer (nested deeper
// than abi.MaxDepth, or a number beyond float64), since such an event, once
// in the log, makes every Wasm view consuming its type halt at it
// (abi.AppendFrame fails). Every payload that is accepted must frame.
func TestPayloadTheABICannotCarryIsRefused(t *testing.T) {
	nest := func(n int, inner string) string {
		return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
	}
	bad := []string{
		nest(abi.MaxDepth+1, "1"),
		`{"a":` + nest(abi.MaxDepth, "1") + `}`,
		`1e400`, `-1e400`, `{"x":[1,1e999]}`,
		strings.Repeat("9", 400),
	}
	good := []string{
		nest(abi.MaxDepth, "1"), nest(abi.MaxDepth+1, ""), `1e-400`, `-0`,
		`1e308`, `18446744073709551616`, `"\ud800"`,
	}
	msg := func(p string) []byte {
		return []byte(`{"type":"publish","id":4,"event":{"producer":"p","pseq":1,"type":"t","payload":` + p + `}}`)
	}
	body := func(p string) []byte {
		return []byte(`{"producer":"p","pseq":1,"type":"t","payload":` + p + `}`)
	}
	for _, p := range bad {
		short := p[:min(len(p), 40)]
		var r Request
		err := DecodeRequest(JSON, msg(p), &r)
		if de, ok := err.(*DecodeError); !ok || de.ID != 4 || !strings.Contains(de.Message, "payload") {
			t.Errorf("publish of payload %s: got %v, want a DecodeError about the payload with id 4", short, err)
		}
		if decodePublishFast(msg(p), &r) {
			t.Errorf("fast path accepted payload %s", short)
		}
		var e Event
		if err := DecodeEvent(body(p), &e); err == nil {
			t.Errorf("DecodeEvent accepted payload %s", short)
		}
	}
	for _, p := range good {
		var r Request
		if err := DecodeRequest(JSON, msg(p), &r); err != nil {
			t.Errorf("payload %s: %v", p[:min(len(p), 40)], err)
			continue
		}
		if _, err := abi.AppendFrame(nil, 1, 0, r.Event.PSeq, r.Event.Producer, r.Event.Type, r.Event.Payload); err != nil {
			t.Errorf("accepted payload %s does not frame: %v", p[:min(len(p), 40)], err)
		}
	}
}

// TestCBORPayloadKeepsFloats: an event reaches reducers with the same
// payload whichever subprotocol it was published over. Floats with an
// integral value (2.0, -0.0, 1e18) stay floats over CBOR, as over JSON,
// rather than turning into integers (ABI.md 5.1: only a number without a
// fraction or exponent is an integer).
func TestCBORPayloadKeepsFloats(t *testing.T) {
	for _, p := range []string{
		`2.0`, `-0.0`, `{"a":[1.0,1e18,0.5,3]}`, `1e20`, `1.5e300`, `-7`, `18446744073709551615`,
		`-9223372036854775809`, `[1e-7,5e-324,100000000000000000000000.0]`,
	} {
		req := Request{Type: TypePublish, Event: Event{Producer: "p", PSeq: 1, Type: "t", Payload: []byte(p)}}
		msg, err := EncodeRequest(CBOR, &req)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var got Request
		if err := DecodeRequest(CBOR, msg, &got); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		want, err := abi.AppendJSONAsCBOR(nil, []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		have, err := abi.AppendJSONAsCBOR(nil, got.Event.Payload)
		if err != nil || string(have) != string(want) {
			t.Errorf("payload %s over CBOR arrived as %s: reducers get %x, over JSON %x (%v)", p, got.Event.Payload, have, want, err)
		}
	}
}

// TestEncodeRequestRefusesTrailingPayloadData: a payload that is not one
// JSON value is refused over CBOR as over JSON, not cut to its first value.
func TestEncodeRequestRefusesTrailingPayloadData(t *testing.T) {
	for _, p := range []string{`1 2`, `{"a":1}{"b":2}`, `[1] x`, `"a" }`} {
		for _, f := range []Format{JSON, CBOR} {
			req := Request{Type: TypePublish, Event: Event{Producer: "p", PSeq: 1, Type: "t", Payload: []byte(p)}}
			if b, err := EncodeRequest(f, &req); err == nil {
				t.Errorf("%v: payload %s encoded as %x", f, p, b)
			}
		}
		if b, err := JSONToCBOR([]byte(p)); err == nil {
			t.Errorf("JSONToCBOR(%s) = %x", p, b)
		}
	}
	if b, err := JSONToCBOR([]byte(" [1]\n\t ")); err != nil || string(b) != "\x81\x01" {
		t.Errorf("JSONToCBOR with white space: %x, %v", b, err)
	}
}
