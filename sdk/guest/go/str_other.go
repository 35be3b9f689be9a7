//go:build !wasip1

package nodb

// Natively (go test, host-side benchmarks) allocations are cheap and
// handlers may run on several goroutines, so strings are allocated as
// usual.

// newBytes returns n (> 0) fresh bytes to build a string in.
func newBytes(n int) []byte { return make([]byte, n) }

// newString returns a copy of b.
func newString(b []byte) string { return string(b) }
