//go:build wasip1

package nodb

// guestChunks serves the strings of the guest, which runs on one thread.
var guestChunks chunks

// newBytes returns n (> 0) fresh bytes to build a string in.
func newBytes(n int) []byte { return guestChunks.alloc(n) }

// newString returns a copy of b.
func newString(b []byte) string { return guestChunks.str(b) }
