package client

import (
	"bytes"
	"strconv"

	"github.com/nodb-dev/nodb/abi/wire"
)

// appendPublish encodes the publish message of cl with pseq, which the
// caller read from cl.pseq under c.mu (a pseq_gap reply may renumber queued
// calls while the writer encodes). The writer goroutine reuses one buffer,
// so sending allocates nothing.
func (c *Client) appendPublish(b []byte, cl *call, pseq uint64) []byte {
	if c.opts.format == wire.CBOR {
		return appendPublishCBOR(b, cl.id, c.producer, pseq, cl.typ, cl.payload)
	}
	return appendPublishJSON(b, cl.id, c.producer, pseq, cl.typ, cl.payload)
}

// appendPublishJSON appends {"type":"publish","id":..,"event":{..}} with
// payload, which must be valid JSON text, copied verbatim.
func appendPublishJSON(b []byte, id uint64, producer string, pseq uint64, typ string, payload []byte) []byte {
	b = append(b, `{"type":"publish","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"event":{"producer":`...)
	b = appendJSONString(b, producer)
	b = append(b, `,"pseq":`...)
	b = strconv.AppendUint(b, pseq, 10)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"payload":`...)
	b = append(b, payload...)
	return append(b, "}}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. s is valid UTF-8 (checked by
// wire.Event.Validate); quotes, backslashes and control characters are
// escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch != '"' && ch != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch ch {
		case '"', '\\':
			b = append(b, '\\', ch)
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendPublishCBOR appends the publish message as a CBOR map; payload is
// already one CBOR data item.
func appendPublishCBOR(b []byte, id uint64, producer string, pseq uint64, typ string, payload []byte) []byte {
	b = appendCBORHead(b, 5, 3)
	b = appendCBORText(b, "type")
	b = appendCBORText(b, wire.TypePublish)
	b = appendCBORText(b, "id")
	b = appendCBORHead(b, 0, id)
	b = appendCBORText(b, "event")
	b = appendCBORHead(b, 5, 4)
	b = appendCBORText(b, "producer")
	b = appendCBORText(b, producer)
	b = appendCBORText(b, "pseq")
	b = appendCBORHead(b, 0, pseq)
	b = appendCBORText(b, "type")
	b = appendCBORText(b, typ)
	b = appendCBORText(b, "payload")
	return append(b, payload...)
}

func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendCBORText(b []byte, s string) []byte {
	b = appendCBORHead(b, 3, uint64(len(s)))
	return append(b, s...)
}

var (
	ackPrefix   = []byte(`{"type":"ack","id":`)
	ackSeq      = []byte(`,"seq":`)
	ackDupFalse = []byte(`,"duplicate":false}`)
	ackDupTrue  = []byte(`,"duplicate":true}`)
)

// parseAckJSON recognises the exact ack form the host writes
// ({"type":"ack","id":N,"seq":N,"duplicate":B}) without reflection. Any other
// text returns ok=false and goes through wire.DecodeReply.
func parseAckJSON(b []byte) (id, seq uint64, dup, ok bool) {
	if !bytes.HasPrefix(b, ackPrefix) {
		return
	}
	b = b[len(ackPrefix):]
	if id, b, ok = parseUintPrefix(b); !ok || !bytes.HasPrefix(b, ackSeq) {
		return 0, 0, false, false
	}
	if seq, b, ok = parseUintPrefix(b[len(ackSeq):]); !ok {
		return 0, 0, false, false
	}
	switch {
	case bytes.Equal(b, ackDupFalse):
		return id, seq, false, true
	case bytes.Equal(b, ackDupTrue):
		return id, seq, true, true
	}
	return 0, 0, false, false
}

func parseUintPrefix(b []byte) (uint64, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i == 16 {
			return 0, nil, false
		}
		v = v*10 + uint64(b[i]-'0')
	}
	if i == 0 || (i > 1 && b[0] == '0') || v > wire.MaxSafeInt {
		return 0, nil, false
	}
	return v, b[i:], true
}
