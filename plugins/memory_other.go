//go:build !(linux || darwin || freebsd)

package plugins

import "github.com/tetratelabs/wazero/experimental"

// Guest memory is wazero's default here (a growing Go slice).

// mmapMemory is never allocated here: Instance.lin stays nil and guest
// memory is reached through wazero's api.Memory.
type mmapMemory struct {
	buf  []byte
	used uint64
}

func allocatorFor(*Instance) experimental.MemoryAllocator { return nil }
