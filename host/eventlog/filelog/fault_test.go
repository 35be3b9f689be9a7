package filelog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/eventlogtest"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

// faultFS wraps the OS file system and fails chosen operations on segment
// files. Counts are of calls since the faultFS was made; 0 disables a fault.
type faultFS struct {
	filelog.OSFS
	mu        sync.Mutex
	writes    int
	syncs     int
	failWrite int   // fail this WriteAt
	short     bool  // the failing WriteAt writes half its bytes first
	failSync  int   // fail this Sync
	failMove  bool  // fail every Rename
	err       error // the injected error, default EIO
	injected  int
}

func (fs *faultFS) fault() error {
	fs.injected++
	if fs.err != nil {
		return fs.err
	}
	return syscall.EIO
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (filelog.File, error) {
	f, err := fs.OSFS.OpenFile(name, flag, perm)
	if err != nil || !strings.Contains(name, ".seg") {
		return f, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

func (fs *faultFS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.failMove {
		return fs.fault()
	}
	return fs.OSFS.Rename(oldname, newname)
}

type faultFile struct {
	filelog.File
	fs *faultFS
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	fs := f.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.writes++
	if fs.writes == fs.failWrite {
		n := 0
		if fs.short {
			n, _ = f.File.WriteAt(b[:len(b)/2], off)
		}
		return n, fs.fault()
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Sync() error {
	fs := f.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.syncs++
	if fs.syncs == fs.failSync {
		return fs.fault()
	}
	return f.File.Sync()
}

// faultRun appends batches through a log on fs until an Append fails, checks
// that the failure is permanent and reported, then reopens the directory on
// the healthy OS file system and checks that every acknowledged record is
// there and any record after them is only from the failed batch.
func faultRun(t *testing.T, fs *faultFS, segSize int64) {
	t.Helper()
	dir := t.TempDir()
	cfg := filelog.Config{Dir: dir, FS: fs, SegmentSize: segSize}
	l, err := filelog.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	ctx := context.Background()
	const n = 1000
	all := want(n)
	var acked uint64
	var failedBatch []eventlog.Record
	for i, k := 0, 0; i < n; k++ {
		m := min(1+k*13%40, n-i)
		batch := eventlogtest.Records(uint64(i+1), m)
		if err := l.Append(ctx, batch); err != nil {
			if !errors.Is(err, eventlog.ErrFailed) || !errors.Is(err, fs.err) {
				t.Fatalf("Append error %v does not wrap ErrFailed and the injected %v", err, fs.err)
			}
			failedBatch = batch
			break
		}
		i += m
		acked = uint64(i)
	}
	if failedBatch == nil {
		t.Fatalf("no fault was injected (%d writes, %d syncs)", fs.writes, fs.syncs)
	}
	// Nothing of the failed batch is visible, and the log stays failed.
	if got := l.LastSeq(); got != acked {
		t.Fatalf("LastSeq = %d after the failed Append, want %d", got, acked)
	}
	if err := l.Failed(); !errors.Is(err, eventlog.ErrFailed) {
		t.Fatalf("Failed() = %v", err)
	}
	if got, err := l.Read(ctx, acked+1, 10, nil); err != nil || len(got) != 0 {
		t.Fatalf("Read past the acked records = %d records, %v", len(got), err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Wait(wctx, acked); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait after a failed Append = %v", err)
	}
	injected := fs.injected
	for range 2 { // later Appends fail without touching the disk again
		if err := l.Append(ctx, eventlogtest.Records(acked+1, 1)); !errors.Is(err, eventlog.ErrFailed) {
			t.Fatalf("Append after failure = %v, want ErrFailed", err)
		}
	}
	if fs.injected != injected {
		t.Fatal("a failed log tried to write again")
	}
	checkRecords(t, l, all[:acked])
	l.Close()

	// "Restart" on a healthy disk.
	l2 := openLog(t, filelog.Config{Dir: dir, SegmentSize: segSize})
	last := l2.LastSeq()
	if last != acked && last != acked+uint64(len(failedBatch)) {
		t.Fatalf("after restart LastSeq = %d, want %d (acked) or %d (with the failed batch)",
			last, acked, acked+uint64(len(failedBatch)))
	}
	checkRecords(t, l2, all[:last])
	appendBatches(t, l2, eventlogtest.Records(last+1, 5), 5)
	checkRecords(t, l2, all[:last+5])
}

func TestFaultWrite(t *testing.T) {
	for _, short := range []bool{false, true} {
		for _, nth := range []int{1, 2, 3, 7, 20} {
			t.Run(fmt.Sprintf("short=%v/write%d", short, nth), func(t *testing.T) {
				faultRun(t, &faultFS{failWrite: nth + 1, short: short, err: syscall.EIO}, filelog.DefaultSegmentSize)
			})
		}
	}
}

func TestFaultENOSPC(t *testing.T) {
	faultRun(t, &faultFS{failWrite: 10, short: true, err: syscall.ENOSPC}, filelog.DefaultSegmentSize)
}

func TestFaultSync(t *testing.T) {
	for _, nth := range []int{1, 2, 5, 30} {
		t.Run(fmt.Sprint(nth), func(t *testing.T) {
			faultRun(t, &faultFS{failSync: nth + 1, err: syscall.EIO}, filelog.DefaultSegmentSize)
		})
	}
}

// Faults while rolling over to a new segment (its header write and sync
// count as writes and syncs too).
func TestFaultRollover(t *testing.T) {
	for _, nth := range []int{4, 9, 15} {
		t.Run(fmt.Sprintf("write%d", nth), func(t *testing.T) {
			faultRun(t, &faultFS{failWrite: nth, err: syscall.EIO}, 4<<10)
		})
		t.Run(fmt.Sprintf("sync%d", nth), func(t *testing.T) {
			faultRun(t, &faultFS{failSync: nth, err: syscall.EIO}, 4<<10)
		})
	}
	t.Run("rename", func(t *testing.T) {
		fs := &faultFS{err: syscall.EIO}
		dir := t.TempDir()
		l := openLog(t, filelog.Config{Dir: dir, FS: fs, SegmentSize: 4 << 10})
		appendBatches(t, l, eventlogtest.Records(1, 20), 20)
		fs.failMove = true
		err := l.Append(context.Background(), eventlogtest.Records(21, 100))
		if !errors.Is(err, eventlog.ErrFailed) {
			t.Fatalf("Append with a failing rename = %v", err)
		}
		l.Close()
		l = openLog(t, filelog.Config{Dir: dir, SegmentSize: 4 << 10})
		checkRecords(t, l, want(20))
		if tmps, _ := filepath.Glob(filepath.Join(dir, filelog.SubDir, "*.tmp")); len(tmps) != 0 {
			t.Fatalf("temporary files left behind: %v", tmps)
		}
	})
}
