//go:build !(linux || darwin || freebsd)

package plugins

import "github.com/tetratelabs/wazero/experimental"

// memoryAllocator is nil here: wazero's default (a growing Go slice).
var memoryAllocator experimental.MemoryAllocator
