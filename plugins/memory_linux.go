package plugins

import "syscall"

const mapNoReserve = syscall.MAP_NORESERVE
