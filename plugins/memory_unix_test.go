//go:build linux || darwin || freebsd

package plugins

import "testing"

// TestKeptMemoryIsZero: a mapping kept for reuse comes back all zero, as a
// fresh one would, wherever the previous guest wrote.
func TestKeptMemoryIsZero(t *testing.T) {
	const max = 64 << 20
	m := mmapAllocate(0, max).(*mmapMemory)
	b := m.Reallocate(1 << 20)
	for i := range b {
		b[i] = 0xAA
	}
	b = m.Reallocate(3 << 20) // grown: the new part too
	for i := 2 << 20; i < len(b); i += 4096 {
		b[i] = 0x55
	}
	m.Free()
	again := mmapAllocate(0, max).(*mmapMemory)
	if again != m {
		t.Log("the mapping was not kept (the pool was full); nothing to check")
	}
	b = again.Reallocate(max)
	for i, c := range b {
		if c != 0 {
			t.Fatalf("byte %#x of reused memory is %#x", i, c)
		}
	}
	again.Free()
}
