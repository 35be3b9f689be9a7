//go:build !linux

package filelog

import "os"

// datasync is fsync where fdatasync is not available. On macOS this does not
// reach the platter (F_FULLFSYNC would); nodb's supported target is Linux.
func datasync(f *os.File) error { return f.Sync() }
