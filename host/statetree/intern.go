package statetree

import "sync/atomic"

// Interning of short strings that decoders see over and over: map keys such
// as "text" and "done". A hit saves an allocation per key of every decoded
// map; a miss costs one more (the slot). Strings are values, so which copy a map holds makes no difference
// to anything but memory.

const (
	internSlots  = 4096 // a power of two
	internMaxLen = 32
)

var internTab [internSlots]atomic.Pointer[string]

// internBytes returns string(b), shared with earlier calls for the same
// short byte string when the slot still holds it.
func internBytes(b []byte) string {
	if len(b) > internMaxLen || len(b) == 0 {
		return string(b)
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &internTab[h&(internSlots-1)]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
