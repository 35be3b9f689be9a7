//go:build linux || darwin || freebsd

package plugins

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// Guest memory is backed by an anonymous mapping that reserves the memory
// cap up front: growing is free (no copy into a bigger Go slice), fresh pages
// are zero without a memclr, and closing an instance returns the memory to
// the OS at once instead of leaving it to Go's collector. A Go guest grows its
// memory many times while it warms up after each epoch re-instantiation, so
// this matters (see RATIONALE.md).
var memoryAllocator experimental.MemoryAllocator = experimental.MemoryAllocatorFunc(mmapAllocate)

type mmapMemory struct{ buf []byte }

func mmapAllocate(_, max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|mapNoReserve)
	if err != nil {
		return nil
	}
	return &mmapMemory{buf: b}
}

// Reallocate implements experimental.LinearMemory.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}
