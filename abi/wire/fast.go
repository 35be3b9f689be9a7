package wire

import "unicode/utf8"

// decodePublishFast decodes the common form of a JSON publish message
// without reflection: an object with keys "type" (= "publish"), optional
// "id" and "event"; the event with "producer" and "type" as strings without
// escapes, "pseq" as plain digits and an optional "payload". Anything else —
// escapes in names, unknown or repeated keys, a malformed payload, an event
// that fails Validate — returns false, and the caller runs the full decoder,
// which accepts every valid message and explains every invalid one. So the
// fast path changes speed only, never results (FuzzDecodePublishFast checks
// that).
func decodePublishFast(data []byte, r *Request) bool {
	if !utf8.Valid(data) {
		return false
	}
	p := fastParser{b: data}
	var seen uint8
	const (
		seenType = 1 << iota
		seenID
		seenEvent
	)
	*r = Request{}
	if !p.byte('{') {
		return false
	}
	for first := true; ; first = false {
		if p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			return false
		}
		key, ok := p.simpleString()
		if !ok || !p.byte(':') {
			return false
		}
		switch string(key) {
		case "type":
			v, ok := p.simpleString()
			if !ok || seen&seenType != 0 || string(v) != TypePublish {
				return false
			}
			seen |= seenType
			r.Type = TypePublish
		case "id":
			v, ok := p.uint()
			if !ok || seen&seenID != 0 {
				return false
			}
			seen |= seenID
			r.ID = v
		case "event":
			if seen&seenEvent != 0 || !p.event(&r.Event) {
				return false
			}
			seen |= seenEvent
		default:
			return false
		}
	}
	p.ws()
	if p.i != len(p.b) || seen&(seenType|seenEvent) != seenType|seenEvent {
		return false
	}
	return r.Event.Validate() == nil
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) byte(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// simpleString reads a string with no escapes and no control characters.
func (p *fastParser) simpleString() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// uint reads a non-negative integer of plain digits up to MaxSafeInt.
func (p *fastParser) uint() (uint64, bool) {
	p.ws()
	start := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + uint64(p.b[p.i]-'0')
		if v > MaxSafeInt {
			return 0, false
		}
		p.i++
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.b[start] == '0') {
		return 0, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return v, true
}

func (p *fastParser) event(e *Event) bool {
	var seen uint8
	if !p.byte('{') {
		return false
	}
	for first := true; ; first = false {
		if p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			return false
		}
		key, ok := p.simpleString()
		if !ok || !p.byte(':') {
			return false
		}
		var bit uint8
		switch string(key) {
		case "producer":
			bit = 1
			v, ok := p.simpleString()
			if !ok {
				return false
			}
			e.Producer = string(v)
		case "type":
			bit = 2
			v, ok := p.simpleString()
			if !ok {
				return false
			}
			e.Type = string(v)
		case "pseq":
			bit = 4
			v, ok := p.uint()
			if !ok {
				return false
			}
			e.PSeq = v
		case "payload":
			bit = 8
			p.ws()
			start := p.i
			if !p.skipValue(0) {
				return false
			}
			// Validate, below, parses the payload (abi.AppendFrame, which
			// refuses all that json.Valid does, FuzzJSONToCBOR; but takes
			// an empty one as null), so it is not checked here too.
			if p.i == start {
				return false
			}
			e.Payload = append([]byte(nil), p.b[start:p.i]...)
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	if seen&8 == 0 {
		e.Payload = nullJSON
	}
	return seen&7 == 7
}

// skipValue moves past one JSON value, matching brackets and strings; the
// skipped bytes are validated by Event.Validate.
func (p *fastParser) skipValue(depth int) bool {
	if depth > 10000 {
		return false
	}
	p.ws()
	if p.i >= len(p.b) {
		return false
	}
	switch p.b[p.i] {
	case '"':
		p.i++
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '\\':
				p.i += 2
				continue
			case '"':
				p.i++
				return true
			}
			p.i++
		}
		return false
	case '{', '[':
		closer := byte('}')
		if p.b[p.i] == '[' {
			closer = ']'
		}
		p.i++
		if p.byte(closer) {
			return true
		}
		for {
			if closer == '}' {
				p.ws()
				if !p.skipValue(depth+1) || !p.byte(':') { // key, then value
					return false
				}
			}
			if !p.skipValue(depth + 1) {
				return false
			}
			if p.byte(closer) {
				return true
			}
			if !p.byte(',') {
				return false
			}
		}
	default:
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
			p.i++
		}
		return true
	}
}
