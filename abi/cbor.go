package abi

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// CBOR major types (RFC 8949 section 3.1).
const (
	MajorUint   = 0
	MajorNegInt = 1
	MajorBytes  = 2
	MajorText   = 3
	MajorArray  = 4
	MajorMap    = 5
	MajorTag    = 6
	MajorSimple = 7
)

// CBOR simple values and float heads used by the JSON data model.
const (
	CBORFalse   = 0xf4
	CBORTrue    = 0xf5
	CBORNull    = 0xf6
	CBORFloat16 = 0xf9
	CBORFloat32 = 0xfa
	CBORFloat64 = 0xfb
)

// AppendHead appends a CBOR head of the given major type and argument in the
// preferred (shortest) serialization.
func AppendHead(dst []byte, major byte, arg uint64) []byte {
	m := major << 5
	switch {
	case arg < 24:
		return append(dst, m|byte(arg))
	case arg <= math.MaxUint8:
		return append(dst, m|24, byte(arg))
	case arg <= math.MaxUint16:
		return append(dst, m|25, byte(arg>>8), byte(arg))
	case arg <= math.MaxUint32:
		return append(dst, m|26, byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
	}
	return append(dst, m|27, byte(arg>>56), byte(arg>>48), byte(arg>>40), byte(arg>>32),
		byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
}

// AppendInt appends an integer.
func AppendInt(dst []byte, v int64) []byte {
	if v < 0 {
		return AppendHead(dst, MajorNegInt, uint64(-1-v))
	}
	return AppendHead(dst, MajorUint, uint64(v))
}

// AppendFloat appends a float64 as an 8-byte CBOR float (0xfb). Writers of
// ABI v1 always use 8 bytes for non-integers; readers accept all widths.
func AppendFloat(dst []byte, f float64) []byte {
	b := math.Float64bits(f)
	return append(dst, CBORFloat64, byte(b>>56), byte(b>>48), byte(b>>40), byte(b>>32),
		byte(b>>24), byte(b>>16), byte(b>>8), byte(b))
}

// AppendString appends a text string.
func AppendString(dst []byte, s string) []byte {
	dst = AppendHead(dst, MajorText, uint64(len(s)))
	return append(dst, s...)
}

// AppendBool appends true or false.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, CBORTrue)
	}
	return append(dst, CBORFalse)
}

// AppendNull appends null.
func AppendNull(dst []byte) []byte { return append(dst, CBORNull) }

// ReadHead decodes the head at the start of b. For major types 0-6 arg is the
// argument; for major 7 info is the additional information (20-27) and arg
// holds the raw bits of a float. n is the size of the head. ok is false for a
// truncated or reserved head, or an indefinite length.
func ReadHead(b []byte) (major, info byte, arg uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, 0, 0, false
	}
	major, info = b[0]>>5, b[0]&31
	switch {
	case info < 24:
		return major, info, uint64(info), 1, true
	case info == 24:
		if len(b) < 2 {
			return
		}
		return major, info, uint64(b[1]), 2, true
	case info == 25:
		if len(b) < 3 {
			return
		}
		return major, info, uint64(binary.BigEndian.Uint16(b[1:])), 3, true
	case info == 26:
		if len(b) < 5 {
			return
		}
		return major, info, uint64(binary.BigEndian.Uint32(b[1:])), 5, true
	case info == 27:
		if len(b) < 9 {
			return
		}
		return major, info, binary.BigEndian.Uint64(b[1:]), 9, true
	}
	return major, info, 0, 0, false
}

// FloatValue converts the raw bits of a float head (info 25, 26 or 27) to a
// float64.
func FloatValue(info byte, bits uint64) float64 {
	switch info {
	case 25:
		return halfToFloat(uint16(bits))
	case 26:
		return float64(math.Float32frombits(uint32(bits)))
	}
	return math.Float64frombits(bits)
}

func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * math.Ldexp(mant+1024, exp-25)
}

// SkipValue returns the size of the well-formed CBOR data item at the start of
// b, within the JSON data model (see ValidateValue). It returns a negative
// Status when the item is malformed or nested deeper than MaxDepth.
func SkipValue(b []byte) (int, Status) {
	return skip(b, 0)
}

// ValidateValue checks that b is exactly one well-formed CBOR data item within
// the JSON data model of ABI v1: unsigned and negative integers in the int64
// range, finite floats (16, 32 or 64 bit), valid UTF-8 text strings, false,
// true, null, definite-length arrays and definite-length maps whose keys are
// text strings; nesting at most MaxDepth; at most MaxValueSize bytes. Byte
// strings, tags, undefined, other simple values and indefinite lengths are
// rejected. It returns StatusOK, StatusInvalidValue or StatusTooLarge.
func ValidateValue(b []byte) Status {
	if len(b) > MaxValueSize {
		return StatusTooLarge
	}
	n, st := skip(b, 0)
	if st != StatusOK {
		return st
	}
	if n != len(b) {
		return StatusInvalidValue
	}
	return StatusOK
}

func skip(b []byte, depth int) (int, Status) {
	if depth > MaxDepth {
		return 0, StatusInvalidValue
	}
	major, info, arg, n, ok := ReadHead(b)
	if !ok {
		return 0, StatusInvalidValue
	}
	switch major {
	case MajorUint, MajorNegInt:
		if arg > math.MaxInt64 {
			return 0, StatusInvalidValue
		}
		return n, StatusOK
	case MajorText:
		if arg > uint64(len(b)-n) {
			return 0, StatusInvalidValue
		}
		end := n + int(arg)
		if !utf8.Valid(b[n:end]) {
			return 0, StatusInvalidValue
		}
		return end, StatusOK
	case MajorArray:
		if arg > uint64(len(b)-n) { // every item is at least one byte
			return 0, StatusInvalidValue
		}
		for i := uint64(0); i < arg; i++ {
			m, st := skip(b[n:], depth+1)
			if st != StatusOK {
				return 0, st
			}
			n += m
		}
		return n, StatusOK
	case MajorMap:
		if arg > uint64(len(b)-n)/2 {
			return 0, StatusInvalidValue
		}
		for i := uint64(0); i < arg; i++ {
			if n >= len(b) || b[n]>>5 != MajorText {
				return 0, StatusInvalidValue
			}
			m, st := skip(b[n:], depth+1)
			if st != StatusOK {
				return 0, st
			}
			n += m
			m, st = skip(b[n:], depth+1)
			if st != StatusOK {
				return 0, st
			}
			n += m
		}
		return n, StatusOK
	case MajorSimple:
		switch info {
		case 20, 21, 22:
			return n, StatusOK
		case 25, 26, 27:
			f := FloatValue(info, arg)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return 0, StatusInvalidValue
			}
			return n, StatusOK
		}
	}
	return 0, StatusInvalidValue
}
