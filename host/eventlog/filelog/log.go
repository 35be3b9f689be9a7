package filelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/host/eventlog"
)

// ErrTooLarge is returned by Append for a record longer than
// Config.MaxRecordSize, or with a producer or type longer than 65535 bytes.
// Nothing of the batch is written and the log stays usable.
var ErrTooLarge = errors.New("filelog: record too large")

// Log is the file-backed eventlog.Log. Create one with Open.
type Log struct {
	cfg    Config
	fs     FS
	dir    string
	logger hclog.Logger
	lock   io.Closer
	rec    Recovery

	// Writer state, owned by the goroutine in Append (wmu serialises it).
	wmu    sync.Mutex
	active File // the last segment, open for writing
	wbuf   []byte
	hasher *chainHasher
	idx    []int64

	mu       sync.RWMutex
	segs     []*segment // in seq order; the last one is active
	last     uint64
	lastHash eventlog.Hash
	closed   bool
	failed   error
	notify   chan struct{} // closed and replaced when last grows, closed on Close
}

var _ eventlog.Log = (*Log)(nil)

// segment is a segment file as the open log knows it.
type segment struct {
	path     string
	firstSeq uint64
	// Guarded by Log.mu; written only by Append under the write lock.
	lastSeq uint64  // firstSeq-1 when empty
	size    int64   // bytes of complete, synced batches
	index   []int64 // offset of record firstSeq + i*indexEvery

	fmu sync.Mutex
	f   File // read handle, opened on first use for sealed segments
}

// Recovery reports what Open found.
type Recovery struct {
	// Segments is the number of segment files.
	Segments int
	// FirstSeq and LastSeq bound the records held after recovery (both 0
	// when the log is empty).
	FirstSeq, LastSeq uint64
	// Torn is the torn tail that was cut from the last segment, or nil.
	Torn *TornTail
	// TempFilesRemoved lists leftover temporary files (from a crash while
	// creating a segment) that were deleted.
	TempFilesRemoved []string
	// Duration is how long the scan and repair took.
	Duration time.Duration
}

// Open opens the log in cfg.Dir, creating it if needed, and recovers it:
// it checks every frame's CRC and the whole hash chain, cuts a torn tail off
// the last segment (saving the cut bytes under Dir/log/torn/), and refuses
// to open, with a *CorruptError wrapping eventlog.ErrCorrupt, if any other
// damage is found. See FORMAT.md for the exact rules.
func Open(cfg Config) (*Log, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Log{
		cfg:    cfg,
		fs:     cfg.FS,
		dir:    cfg.logDir(),
		logger: cfg.Logger.Named("filelog"),
		hasher: newChainHasher(),
		notify: make(chan struct{}),
	}
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("filelog: create %s: %w", l.dir, err)
	}
	lock, err := l.fs.Lock(filepath.Join(l.dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("filelog: lock %s (is another nodb using it?): %w", l.dir, err)
	}
	l.lock = lock
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, err
	}
	l.rec.Duration = time.Since(start)
	l.rec.Segments = len(l.segs)
	l.rec.FirstSeq, l.rec.LastSeq = l.firstSeq(), l.last
	l.logger.Info("event log opened", "dir", l.dir, "segments", len(l.segs),
		"first_seq", l.rec.FirstSeq, "last_seq", l.last, "duration", l.rec.Duration)
	return l, nil
}

func (l *Log) recover() error {
	s := &segScanner{maxData: maxDataLimit, fnMeta: l.cfg.OnRecord}
	res, err := s.scanLog(l.fs, l.dir)
	if err != nil {
		return err
	}
	for _, p := range res.temps {
		if err := l.fs.Remove(p); err != nil {
			return fmt.Errorf("filelog: remove leftover %s: %w", p, err)
		}
		l.rec.TempFilesRemoved = append(l.rec.TempFilesRemoved, p)
		l.logger.Warn("removed leftover temporary file", "path", p)
	}
	if len(res.temps) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("filelog: sync %s: %w", l.dir, err)
		}
	}
	if res.torn != nil {
		if err := l.cutTail(res.torn); err != nil {
			return err
		}
		l.rec.Torn = res.torn
	}
	for _, si := range res.segs {
		l.segs = append(l.segs, &segment{
			path: si.path, firstSeq: si.hdr.firstSeq, lastSeq: si.lastSeq, size: si.end, index: si.index,
		})
	}
	if len(res.segs) == 0 {
		f, seg, err := createSegment(l.fs, l.dir, segHeader{firstSeq: 1})
		if err != nil {
			return err
		}
		l.active = f
		l.segs = append(l.segs, seg)
		return nil
	}
	lastInfo := res.segs[len(res.segs)-1]
	l.last, l.lastHash = lastInfo.lastSeq, lastInfo.lastHash
	act := l.segs[len(l.segs)-1]
	f, err := l.fs.OpenFile(act.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("filelog: open %s: %w", act.path, err)
	}
	l.active, act.f = f, f
	return nil
}

// cutTail saves the torn tail aside, durably, then truncates the segment.
func (l *Log) cutTail(t *TornTail) error {
	l.logger.Warn("torn tail in last segment; truncating to the last complete batch",
		"segment", t.Segment, "offset", t.Offset, "bytes", t.Bytes, "frames", t.Frames, "reason", t.Reason)
	f, err := l.fs.OpenFile(t.Segment, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("filelog: open %s: %w", t.Segment, err)
	}
	defer f.Close()
	dir := filepath.Join(l.dir, tornDir)
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("filelog: create %s: %w", dir, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("filelog: sync %s: %w", l.dir, err)
	}
	// A tail cut earlier at the same offset (the batch written there after
	// it was torn too) is kept: it may hold the only copy of records.
	saved := filepath.Join(dir, fmt.Sprintf("%s.%d.tail", filepath.Base(t.Segment), t.Offset))
	for k := 2; ; k++ {
		g, err := l.fs.OpenFile(saved, os.O_RDONLY, 0)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("filelog: check %s: %w", saved, err)
		}
		g.Close()
		saved = filepath.Join(dir, fmt.Sprintf("%s.%d.%d.tail", filepath.Base(t.Segment), t.Offset, k))
	}
	err = writeFileAtomic(l.fs, saved, func(w File) error {
		buf := make([]byte, min(t.Bytes, 1<<20))
		for off := int64(0); off < t.Bytes; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), t.Bytes-off)], t.Offset+off)
			if n == 0 && err != nil {
				return fmt.Errorf("read %s at offset %d: %w", t.Segment, t.Offset+off, err)
			}
			if _, err := w.WriteAt(buf[:n], off); err != nil {
				return err
			}
			off += int64(n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("filelog: save torn tail to %s: %w", saved, err)
	}
	t.SavedAs = saved
	if err := f.Truncate(t.Offset); err != nil {
		return fmt.Errorf("filelog: truncate %s to %d: %w", t.Segment, t.Offset, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("filelog: sync %s: %w", t.Segment, err)
	}
	l.logger.Warn("torn tail saved", "path", saved)
	return nil
}

// writeFileAtomic creates name through a temporary file: fill writes the
// content, which is synced, renamed into place, and the directory synced.
func writeFileAtomic(fsys FS, name string, fill func(File) error) error {
	tmp := name + tmpSuffix
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		err = fsys.SyncDir(filepath.Dir(name))
	}
	if err != nil {
		_ = fsys.Remove(tmp)
	}
	return err
}

// createSegment creates a segment file with the header h, durably, and
// returns it open for writing.
func createSegment(fsys FS, dir string, h segHeader) (File, *segment, error) {
	path := filepath.Join(dir, segName(h.firstSeq))
	tmp := path + tmpSuffix
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("filelog: create %s: %w", tmp, err)
	}
	step := "write header to"
	b := h.encode()
	n, err := f.WriteAt(b, 0)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err == nil {
		step, err = "sync", f.Sync()
	}
	if err == nil {
		step, err = "rename", fsys.Rename(tmp, path)
	}
	if err == nil {
		step, err = "sync directory of", fsys.SyncDir(dir)
	}
	if err != nil {
		f.Close()
		_ = fsys.Remove(tmp)
		return nil, nil, fmt.Errorf("filelog: create segment %s: %s: %w", path, step, err)
	}
	seg := &segment{path: path, firstSeq: h.firstSeq, lastSeq: h.firstSeq - 1, size: segHeaderSize, f: f}
	return f, seg, nil
}

// Recovery returns what Open found and repaired.
func (l *Log) Recovery() Recovery { return l.rec }

// Failed returns nil while the log is healthy, and the error that failed it
// (wrapping eventlog.ErrFailed) after a write or sync error. For readiness
// checks: a failed log must be restarted.
func (l *Log) Failed() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.failed
}

// Dir returns the directory holding the segment files (Config.Dir/log).
func (l *Log) Dir() string { return l.dir }

func (l *Log) fail(err error) error {
	err = fmt.Errorf("%w: %w", err, eventlog.ErrFailed)
	l.logger.Error("event log failed; no further appends will be acknowledged", "error", err)
	l.mu.Lock()
	l.failed = err
	l.mu.Unlock()
	return err
}

// Append implements eventlog.Log: one write of the whole encoded batch, then
// one fdatasync. A batch is never split across segments; if it would take
// the segment past Config.SegmentSize, a new segment is started first. The
// context is checked before anything is written, not after.
func (l *Log) Append(ctx context.Context, recs []eventlog.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.RLock()
	closed, failed, last, prev := l.closed, l.failed, l.last, l.lastHash
	l.mu.RUnlock()
	switch {
	case closed:
		return eventlog.ErrClosed
	case failed != nil:
		return failed
	case len(recs) == 0:
		return nil
	}
	total := int64(0)
	for i := range recs {
		r := &recs[i]
		if want := last + 1 + uint64(i); r.Seq != want || r.Seq > eventlog.MaxSeq {
			return fmt.Errorf("filelog: record %d of the batch has seq %d, want %d: %w", i, r.Seq, want, eventlog.ErrOutOfOrder)
		}
		if err := checkRecord(r, l.cfg.MaxRecordSize); err != nil {
			return err
		}
		total += int64(frameSize(len(r.Producer) + len(r.Type) + len(r.Payload)))
	}
	seg := l.segs[len(l.segs)-1]
	if seg.lastSeq >= seg.firstSeq && seg.size+total > l.cfg.SegmentSize {
		f, next, err := createSegment(l.fs, l.dir, segHeader{firstSeq: recs[0].Seq, prevHash: prev})
		if err != nil {
			return l.fail(err)
		}
		l.mu.Lock()
		l.segs = append(l.segs, next)
		l.mu.Unlock()
		l.active, seg = f, next
	}

	buf, idx := l.wbuf[:0], l.idx[:0]
	n := uint32(len(recs))
	for i := range recs {
		r := &recs[i]
		r.Hash = l.hasher.record(&prev, r)
		prev = r.Hash
		if (r.Seq-seg.firstSeq)%indexEvery == 0 {
			idx = append(idx, seg.size+int64(len(buf)))
		}
		buf = appendFrame(buf, r, n-1-uint32(i))
	}
	if cap(buf) <= 4<<20 { // keep the buffer unless one huge batch grew it
		l.wbuf = buf[:0]
	}
	l.idx = idx[:0]

	w, err := l.active.WriteAt(buf, seg.size)
	if err == nil && w != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return l.fail(fmt.Errorf("filelog: write seq %d..%d (%d bytes) to %s at offset %d: %w",
			recs[0].Seq, recs[n-1].Seq, len(buf), seg.path, seg.size, err))
	}
	if err := l.active.Sync(); err != nil {
		return l.fail(fmt.Errorf("filelog: sync %s after writing seq %d..%d: %w", seg.path, recs[0].Seq, recs[n-1].Seq, err))
	}

	l.mu.Lock()
	seg.size += int64(len(buf))
	seg.lastSeq = recs[n-1].Seq
	seg.index = append(seg.index, idx...)
	l.last, l.lastHash = recs[n-1].Seq, prev
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// firstSeq is FirstSeq with l.mu held.
func (l *Log) firstSeq() uint64 {
	if len(l.segs) == 0 || l.last < l.segs[0].firstSeq {
		return 0
	}
	return l.segs[0].firstSeq
}

// FirstSeq implements eventlog.Log.
func (l *Log) FirstSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.firstSeq()
}

// LastSeq implements eventlog.Log.
func (l *Log) LastSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last
}

// LastHash implements eventlog.Log.
func (l *Log) LastHash() eventlog.Hash {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lastHash
}

// Wait implements eventlog.Log.
func (l *Log) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		l.mu.RLock()
		last, closed, ch := l.last, l.closed, l.notify
		l.mu.RUnlock()
		if closed {
			return last, eventlog.ErrClosed
		}
		if last > after {
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// Read implements eventlog.Log. Every frame read is checked against its
// CRC; a mismatch gives a *CorruptError.
func (l *Log) Read(ctx context.Context, from uint64, max int, buf []eventlog.Record) ([]eventlog.Record, error) {
	buf = buf[:0]
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return buf, eventlog.ErrClosed
	}
	if first := l.firstSeq(); from == 0 || from < first || (first == 0 && from < l.segs[0].firstSeq) {
		return buf, fmt.Errorf("filelog: read from seq %d, first held is %d: %w", from, first, eventlog.ErrNotFound)
	}
	if from > l.last || max <= 0 {
		return buf, nil
	}
	end := l.last
	if uint64(max) <= end-from {
		end = from + uint64(max) - 1
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	si := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].firstSeq > from }) - 1
	var strs [2]string // the last producer and type, reused while they repeat
	for seq := from; seq <= end; si++ {
		seg := l.segs[si]
		if seg.lastSeq < seq {
			continue
		}
		f, err := l.readHandle(seg)
		if err != nil {
			return buf, err
		}
		r := &reader{f: f, size: seg.size, buf: (*bp)[:0], win: cap(*bp)}
		var at uint64
		buf, at, err = l.readSeg(r, seg, seq, end, buf, &strs)
		if cap(r.buf) <= 1<<20 {
			*bp = r.buf[:0]
		}
		if err != nil {
			return buf, err
		}
		seq = at
	}
	return buf, nil
}

// readSeg appends the records seq..end held in seg to buf, and returns the
// seq after the last one appended.
func (l *Log) readSeg(r *reader, seg *segment, seq, end uint64, buf []eventlog.Record, strs *[2]string) ([]eventlog.Record, uint64, error) {
	k := (seq - seg.firstSeq) / indexEvery
	at, off := seg.firstSeq+k*indexEvery, seg.index[k]
	for ; at <= end && at <= seg.lastSeq; at++ {
		b, err := r.at(off, frameHeaderSize)
		if err != nil {
			return buf, at, fmt.Errorf("filelog: read %s at offset %d: %w", seg.path, off, err)
		}
		n, err := frameHeader(b, maxDataLimit)
		if err == nil && at >= seq {
			if b, err = r.at(off, n); err != nil {
				return buf, at, fmt.Errorf("filelog: read %s at offset %d: %w", seg.path, off, err)
			}
			var fr frame
			fr, _, err = decodeFrame(b, maxDataLimit)
			if err == nil && fr.seq != at {
				err = fmt.Errorf("frame holds seq %d", fr.seq)
			}
			if err == nil {
				rec := eventlog.Record{Seq: fr.seq, PSeq: fr.pseq, Time: fr.time, Hash: fr.hash,
					Producer: strs[0], Type: strs[1]}
				if string(fr.producer) != strs[0] {
					rec.Producer = string(fr.producer)
					strs[0] = rec.Producer
				}
				if string(fr.typ) != strs[1] {
					rec.Type = string(fr.typ)
					strs[1] = rec.Type
				}
				if len(fr.payload) > 0 {
					rec.Payload = append([]byte(nil), fr.payload...)
				}
				buf = append(buf, rec)
			}
		}
		if err != nil {
			return buf, at, &CorruptError{File: seg.path, Offset: off, Seq: at, Reason: "on read: " + err.Error()}
		}
		off += int64(n)
	}
	return buf, at, nil
}

// readHandle returns a file handle for reading seg, opening it on first use.
func (l *Log) readHandle(seg *segment) (File, error) {
	seg.fmu.Lock()
	defer seg.fmu.Unlock()
	if seg.f == nil {
		f, err := l.fs.OpenFile(seg.path, os.O_RDONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("filelog: open %s: %w", seg.path, err)
		}
		seg.f = f
	}
	return seg.f, nil
}

// Close implements eventlog.Log. It waits for an Append in progress.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return eventlog.ErrClosed
	}
	l.closed = true
	close(l.notify)
	return l.closeFiles()
}

// closeFiles closes every open file and releases the directory lock.
func (l *Log) closeFiles() error {
	var errs []error
	for _, seg := range l.segs {
		if seg.f != nil && seg.f != l.active {
			errs = append(errs, seg.f.Close())
		}
		seg.f = nil
	}
	if l.active != nil {
		errs = append(errs, l.active.Close())
		l.active = nil
	}
	if l.lock != nil {
		errs = append(errs, l.lock.Close())
		l.lock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("filelog: close: %w", err)
	}
	return nil
}
