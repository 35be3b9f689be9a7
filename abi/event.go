package abi

import (
	"encoding/binary"
	"errors"
	"slices"
)

// Event frame layout (ABI.md, "Event frames"). All integers little-endian.
const (
	// FrameHeaderSize is the size of the fixed event frame header.
	FrameHeaderSize = 40

	OffSeq         = 0  // u64 sequence number
	OffTime        = 8  // i64 time, Unix nanoseconds
	OffPSeq        = 16 // u64 producer sequence number
	OffProducerLen = 24 // u32 length of the producer name
	OffTypeLen     = 28 // u32 length of the event type
	OffPayloadLen  = 32 // u32 length of the payload
	OffFormat      = 36 // u32 payload format, FormatCBOR in ABI v1
)

// FormatCBOR is the only payload format of ABI v1: one CBOR data item within
// the JSON data model, converted by the host from the stored JSON payload.
const FormatCBOR = 1

// ErrFrame is returned for a malformed event frame.
var ErrFrame = errors.New("abi: malformed event frame")

// Frame is a decoded event frame. Producer, Type and Payload alias the frame's
// bytes.
type Frame struct {
	Seq      uint64 // global sequence number
	Time     int64  // Unix nanoseconds
	PSeq     uint64 // producer sequence number
	Producer []byte // UTF-8
	Type     []byte // UTF-8
	Payload  []byte // one CBOR data item
}

// AppendFrame appends the frame of one event to dst. payloadJSON is the event's
// stored JSON payload; it is converted to CBOR (an empty payload becomes CBOR
// null). It returns an error if the payload is not valid JSON or the frame
// exceeds MaxFrameSize.
func AppendFrame(dst []byte, seq uint64, time int64, pseq uint64, producer, typ string, payloadJSON []byte) ([]byte, error) {
	start := len(dst)
	dst = slices.Grow(dst, FrameHeaderSize+len(producer)+len(typ))
	dst = dst[:start+FrameHeaderSize] // every byte of the header is written below
	dst = append(dst, producer...)
	dst = append(dst, typ...)
	pstart := len(dst)
	var err error
	if len(trimSpace(payloadJSON)) == 0 {
		dst = append(dst, 0xf6)
	} else {
		dst, err = AppendJSONAsCBOR(dst, payloadJSON)
		if err != nil {
			return dst[:start], err
		}
	}
	if len(dst)-start > MaxFrameSize {
		return dst[:start], errors.New("abi: event frame larger than MaxFrameSize")
	}
	b := dst[start:]
	binary.LittleEndian.PutUint64(b[OffSeq:], seq)
	binary.LittleEndian.PutUint64(b[OffTime:], uint64(time))
	binary.LittleEndian.PutUint64(b[OffPSeq:], pseq)
	binary.LittleEndian.PutUint32(b[OffProducerLen:], uint32(len(producer)))
	binary.LittleEndian.PutUint32(b[OffTypeLen:], uint32(len(typ)))
	binary.LittleEndian.PutUint32(b[OffPayloadLen:], uint32(len(dst)-pstart))
	binary.LittleEndian.PutUint32(b[OffFormat:], FormatCBOR)
	return dst, nil
}

// DecodeFrame decodes an event frame. It checks the lengths and the format,
// not the payload's CBOR.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	if len(b) < FrameHeaderSize {
		return f, ErrFrame
	}
	f.Seq = binary.LittleEndian.Uint64(b[OffSeq:])
	f.Time = int64(binary.LittleEndian.Uint64(b[OffTime:]))
	f.PSeq = binary.LittleEndian.Uint64(b[OffPSeq:])
	pl := uint64(binary.LittleEndian.Uint32(b[OffProducerLen:]))
	tl := uint64(binary.LittleEndian.Uint32(b[OffTypeLen:]))
	yl := uint64(binary.LittleEndian.Uint32(b[OffPayloadLen:]))
	if binary.LittleEndian.Uint32(b[OffFormat:]) != FormatCBOR {
		return f, ErrFrame
	}
	if FrameHeaderSize+pl+tl+yl != uint64(len(b)) {
		return f, ErrFrame
	}
	p := uint64(FrameHeaderSize)
	f.Producer = b[p : p+pl : p+pl]
	p += pl
	f.Type = b[p : p+tl : p+tl]
	p += tl
	f.Payload = b[p : p+yl : p+yl]
	return f, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
