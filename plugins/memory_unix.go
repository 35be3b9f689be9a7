//go:build linux || darwin || freebsd

package plugins

import (
	"sync"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// Guest memory is backed by an anonymous mapping that reserves the memory
// cap up front: growing is free (no copy into a bigger Go slice), fresh pages
// are zero without a memclr, and closing an instance returns the memory to
// the OS at once instead of leaving it to Go's collector. A Go guest grows its
// memory many times while it warms up after each epoch re-instantiation, so
// this matters (see RATIONALE.md). Each Instance installs it through
// allocatorFor.
type mmapMemory struct {
	buf []byte
	// used is the largest size handed out: everything the guest could
	// write. wazero grows a memory by reallocating it to the new size and
	// never shrinks it, so it is also the memory's current size, which host
	// functions check ranges against (Instance.read).
	used uint64
}

// Freed mappings are kept for the next instance: the re-instantiation at
// every epoch boundary would otherwise map fresh memory and take a page
// fault (and a kernel memclr) on every page the new guest touches while it
// initialises. A kept mapping is zeroed up to the largest size the guest
// had (beyond that it was never accessible, so it is still zero) and is then
// indistinguishable from a fresh one. Only mappings whose guests stayed
// small are kept, and only a few.
const (
	keepMemories   = 4
	keepMemoryUsed = 16 << 20
)

var keptMemories struct {
	sync.Mutex
	m []*mmapMemory
}

func mmapAllocate(_, max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return nil
	}
	keptMemories.Lock()
	for i, m := range keptMemories.m {
		if uint64(len(m.buf)) == max {
			keptMemories.m = append(keptMemories.m[:i], keptMemories.m[i+1:]...)
			keptMemories.Unlock()
			return m
		}
	}
	keptMemories.Unlock()
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
	m.used = max(m.used, size)
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *mmapMemory) Free() {
	if m.buf == nil {
		return
	}
	if m.used <= keepMemoryUsed {
		keptMemories.Lock()
		if len(keptMemories.m) < keepMemories {
			clear(m.buf[:m.used])
			m.used = 0
			keptMemories.m = append(keptMemories.m, m)
			keptMemories.Unlock()
			return
		}
		keptMemories.Unlock()
	}
	_ = syscall.Munmap(m.buf)
	m.buf = nil
}

// allocatorFor returns the allocator of i's guests: mmapAllocate, which also
// points i.lin at the guest's memory, so that host functions reach guest
// memory with a bounds check of their own rather than two calls through
// wazero's interfaces (api.Module.Memory, then api.Memory.Read).
func allocatorFor(i *Instance) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(c, max uint64) experimental.LinearMemory {
		m := mmapAllocate(c, max)
		i.lin, _ = m.(*mmapMemory)
		return m
	})
}
