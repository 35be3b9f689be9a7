package filelog

import (
	"io"
	"os"
	"slices"
)

// FS is the small file-system interface filelog does all its I/O through.
// The default is OSFS; tests substitute one that injects faults.
type FS interface {
	// OpenFile opens a file like os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename renames a file like os.Rename (atomic within a directory).
	Rename(oldname, newname string) error
	// Remove removes a file like os.Remove.
	Remove(name string) error
	// MkdirAll creates a directory and its parents like os.MkdirAll.
	MkdirAll(path string, perm os.FileMode) error
	// ReadDir returns the names of the entries in a directory, sorted.
	ReadDir(name string) ([]string, error)
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable, by fsync on the directory on POSIX systems.
	SyncDir(name string) error
	// Lock takes an exclusive advisory lock on the named file, creating it,
	// and fails at once if another process holds it. Closing the result
	// releases the lock.
	Lock(name string) (io.Closer, error)
}

// File is an open file. Offsets are explicit: filelog never relies on a
// file position.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Sync makes the file's data, and the metadata needed to read it back
	// (its size), durable: fdatasync on Linux, fsync elsewhere.
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Stat returns the file's metadata.
	Stat() (os.FileInfo, error)
}

// OSFS is the operating system's file system, the default FS.
type OSFS struct{}

var _ FS = OSFS{}

type osFile struct{ *os.File }

// Sync implements File with fdatasync where the platform has it.
func (f osFile) Sync() error { return datasync(f.File) }

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// ReadDir implements FS.
func (OSFS) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

// SyncDir implements FS.
func (OSFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock implements FS.
func (OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
