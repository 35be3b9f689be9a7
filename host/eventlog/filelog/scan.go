package filelog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nodb-dev/nodb/host/eventlog"
)

// indexEvery is the stride of the in-memory index: it holds the offset of
// every indexEvery-th record of a segment, so a Read skips at most
// indexEvery-1 frame headers.
const indexEvery = 64

const (
	segSuffix = ".seg"
	tmpSuffix = ".tmp"
	tornDir   = "torn"
	lockName  = "LOCK"
)

func segName(firstSeq uint64) string { return fmt.Sprintf("%020d%s", firstSeq, segSuffix) }

// parseSegName returns the first seq named by a segment file name.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// CorruptError reports damage that is not a torn tail: a bad frame followed
// by valid data, a bad frame in a sealed segment, a broken hash chain, or a
// bad segment header. It wraps eventlog.ErrCorrupt.
type CorruptError struct {
	// File is the path of the damaged segment file.
	File string
	// Offset is the byte offset in File of the damaged frame or header.
	Offset int64
	// Seq is the sequence the damaged frame holds or should hold, 0 if
	// unknown.
	Seq uint64
	// Reason says what is wrong.
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	seq := ""
	if e.Seq != 0 {
		seq = fmt.Sprintf(" (seq %d)", e.Seq)
	}
	return fmt.Sprintf("filelog: corrupt log: %s at offset %d%s: %s", e.File, e.Offset, seq, e.Reason)
}

// Unwrap returns eventlog.ErrCorrupt.
func (e *CorruptError) Unwrap() error { return eventlog.ErrCorrupt }

// TornTail describes the end of the last segment that was cut (by Open) or
// would be cut (as Verify reports it): the bytes after the last complete
// Append batch.
type TornTail struct {
	// Segment is the path of the segment file.
	Segment string
	// Offset is where the cut starts: the end of the last complete batch.
	Offset int64
	// Bytes is how many bytes follow Offset.
	Bytes int64
	// Frames counts valid frames among the cut bytes: records of the
	// batch whose write did not complete.
	Frames int
	// Reason says how the tail is damaged.
	Reason string
	// SavedAs is the file the cut bytes were copied to before the
	// segment was truncated; empty in a VerifyReport.
	SavedAs string
}

// segInfo is what a scan learns about one segment file.
type segInfo struct {
	name     string
	path     string
	hdr      segHeader
	lastSeq  uint64        // hdr.firstSeq-1 when the segment holds no record
	lastHash eventlog.Hash // hdr.prevHash when the segment holds no record
	end      int64         // end of the last complete batch
	fileSize int64
	index    []int64 // offset of record hdr.firstSeq + i*indexEvery
}

type scanResult struct {
	segs  []*segInfo
	torn  *TornTail // only ever in the last segment
	temps []string  // leftover temporary files (full paths)
}

// reader gives random access to a file through a window buffer, suited to
// reading forward.
type reader struct {
	f    File
	size int64 // bytes past size are never read
	buf  []byte
	off  int64 // file offset of buf[0]
	win  int   // preferred window size
	// moving, if set, is called before the window moves: slices returned
	// earlier are about to be overwritten.
	moving func()
}

// at returns the file's bytes [off, off+n), or fewer when the file (or
// r.size) ends first. The result is valid until the next call.
func (r *reader) at(off int64, n int) ([]byte, error) {
	if off >= r.off && off+int64(n) <= r.off+int64(len(r.buf)) {
		return r.buf[off-r.off : off-r.off+int64(n)], nil
	}
	if r.moving != nil {
		r.moving()
	}
	want := int64(max(n, r.win))
	if rest := r.size - off; want > rest {
		want = max(rest, 0)
	}
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	r.off = off
	got, err := r.f.ReadAt(r.buf, off)
	r.buf = r.buf[:got]
	if err != nil && !(errors.Is(err, io.EOF) && got == len(r.buf)) {
		if errors.Is(err, io.EOF) {
			return r.buf[:min(got, n)], nil // the file is shorter than its size said
		}
		return nil, err
	}
	return r.buf[:min(got, n)], nil
}

// scanLog reads and checks every segment in dir, read-only. It calls fn, if
// not nil, for every record of a complete batch, in order.
func scanLog(fsys FS, dir string, maxData int, fn func(eventlog.Record) error) (*scanResult, error) {
	s := &segScanner{maxData: maxData, fn: fn}
	return s.scanLog(fsys, dir)
}

func (s *segScanner) scanLog(fsys FS, dir string) (*scanResult, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("filelog: list %s: %w", dir, err)
	}
	res := &scanResult{}
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			res.temps = append(res.temps, filepath.Join(dir, name))
			continue
		}
		first, ok := parseSegName(name)
		if !ok {
			continue
		}
		res.segs = append(res.segs, &segInfo{name: name, path: filepath.Join(dir, name), hdr: segHeader{firstSeq: first}})
	}
	for i, seg := range res.segs {
		var prev *segInfo
		if i > 0 {
			prev = res.segs[i-1]
		}
		torn, err := s.scanFile(fsys, seg, prev, i == len(res.segs)-1)
		if err != nil {
			return nil, err
		}
		res.torn = torn
	}
	return res, nil
}

type segScanner struct {
	maxData int
	fn      func(eventlog.Record) error
	// fnMeta, like fn, gets each record of a complete batch, but only the
	// fields a dedupe table needs and without copying the payload.
	fnMeta  func(seq, pseq uint64, producer []byte, time int64) error
	chain   chainCheck
	buf     []byte
	pending []eventlog.Record // records read, for fn
	metas   []recMeta         // the same for fnMeta
	prods   []byte            // their producers' bytes
	// done is how many of pending (or metas) belong to complete batches,
	// whose callbacks are due once their hashes are checked.
	done int
	err  error // the error a check found; the scan stops with it
}

// recMeta is what fnMeta reports of a record; the producer is prods[p0:p1].
type recMeta struct {
	seq, pseq uint64
	time      int64
	p0, p1    int
}

// scanFile scans one segment file, filling in seg. It returns the torn tail
// of the last segment, if any, and a *CorruptError for any other damage.
func (s *segScanner) scanFile(fsys FS, seg, prev *segInfo, last bool) (*TornTail, error) {
	f, err := fsys.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("filelog: open %s: %w", seg.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("filelog: stat %s: %w", seg.path, err)
	}
	r := &reader{f: f, size: fi.Size(), buf: s.buf, win: 1 << 20}
	defer func() { s.buf = r.buf[:0] }()
	return s.scan(r, seg, prev, last)
}

// scan checks the segment read by r; prev is the segment before it, if any.
func (s *segScanner) scan(r *reader, seg, prev *segInfo, last bool) (*TornTail, error) {
	corrupt := func(off int64, seq uint64, format string, args ...any) error {
		return &CorruptError{File: seg.path, Offset: off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	seg.fileSize = r.size
	named := seg.hdr.firstSeq
	b, err := r.at(0, segHeaderSize)
	if err != nil {
		return nil, fmt.Errorf("filelog: read %s: %w", seg.path, err)
	}
	hdr, err := decodeSegHeader(b)
	if err != nil {
		return nil, corrupt(0, 0, "segment header: %v", err)
	}
	if hdr.firstSeq != named {
		return nil, corrupt(0, hdr.firstSeq, "header says first seq %d, file name says %d", hdr.firstSeq, named)
	}
	if hdr.firstSeq == 1 && hdr.prevHash != (eventlog.Hash{}) {
		return nil, corrupt(0, 1, "segment starting at seq 1 has a non-zero previous hash")
	}
	if prev != nil && (hdr.firstSeq != prev.lastSeq+1 || hdr.prevHash != prev.lastHash) {
		return nil, corrupt(0, hdr.firstSeq, "segment header (first seq %d, previous hash %x) does not continue %s (last seq %d, hash %x)",
			hdr.firstSeq, hdr.prevHash[:8], prev.name, prev.lastSeq, prev.lastHash[:8])
	}
	seg.hdr = hdr
	seg.lastSeq, seg.lastHash, seg.end = hdr.firstSeq-1, hdr.prevHash, segHeaderSize
	seg.index = seg.index[:0]

	var (
		off        = int64(segHeaderSize)
		expect     = hdr.firstSeq
		prevHash   = hdr.prevHash
		inBatch    bool   // the last frame read has remaining > 0
		want       uint32 // remaining the next frame must carry when inBatch
		batchEnd   uint64 // last seq of the batch being read
		batchStart uint64 // its first seq
		frames     int    // frames read of the current batch
		bad        error  // why the frame at off does not decode
	)
	// The hash chain is checked a window of the file at a time, in
	// parallel (see chainCheck), just before the reader moves on and the
	// frames' bytes go; callbacks wait for their records' check. So that
	// errors are the ones a frame-by-frame scan would give, the frames
	// read so far are checked before any other error is returned.
	s.pending, s.metas, s.prods, s.done, s.err = s.pending[:0], s.metas[:0], s.prods[:0], 0, nil
	r.moving = func() { s.check(seg.path) }
	defer func() { r.moving = nil }()
	fail := func(err error) error {
		if herr := s.check(seg.path); herr != nil {
			return herr
		}
		return err
	}
	for off < r.size {
		var f frame
		f, n, err := s.frameAt(r, off)
		if s.err != nil {
			return nil, s.err
		}
		if err != nil {
			if errors.Is(err, errFrameShort) || isFrameErr(err) {
				bad = err
				break
			}
			return nil, fail(fmt.Errorf("filelog: read %s at offset %d: %w", seg.path, off, err))
		}
		// A frame that decodes was written whole by some Append; if its
		// content does not fit, no torn write explains it.
		if f.seq != expect {
			return nil, fail(corrupt(off, expect, "frame holds seq %d, want %d", f.seq, expect))
		}
		if f.seq > eventlog.MaxSeq {
			return nil, fail(corrupt(off, f.seq, "seq above MaxSeq"))
		}
		if inBatch && f.remaining != want {
			return nil, fail(corrupt(off, f.seq, "frame says %d records follow in its batch, want %d", f.remaining, want))
		}
		if !inBatch {
			batchStart = f.seq
		}
		s.chain.add(prevHash, f, off, batchStart)
		if (f.seq-hdr.firstSeq)%indexEvery == 0 {
			seg.index = append(seg.index, off)
		}
		if !inBatch {
			batchEnd, frames = f.seq+uint64(f.remaining), 0
		}
		frames++
		if s.fnMeta != nil {
			p0 := len(s.prods)
			s.prods = append(s.prods, f.producer...)
			s.metas = append(s.metas, recMeta{f.seq, f.pseq, f.time, p0, len(s.prods)})
		}
		if s.fn != nil {
			s.pending = append(s.pending, eventlog.Record{
				Seq: f.seq, Producer: string(f.producer), PSeq: f.pseq, Time: f.time,
				Type: string(f.typ), Payload: append([]byte(nil), f.payload...), Hash: f.hash,
			})
		}
		prevHash = f.hash
		expect++
		off += int64(n)
		inBatch, want = f.remaining > 0, f.remaining-1
		if !inBatch { // the batch is complete
			seg.lastSeq, seg.lastHash, seg.end = f.seq, f.hash, off
			s.done = max(len(s.pending), len(s.metas))
		}
	}
	if err := s.check(seg.path); err != nil {
		return nil, err
	}
	// Drop index entries of an incomplete batch.
	for len(seg.index) > 0 && seg.index[len(seg.index)-1] >= seg.end {
		seg.index = seg.index[:len(seg.index)-1]
	}
	if bad == nil && !inBatch {
		return nil, nil
	}
	reason := ""
	if bad != nil {
		reason = fmt.Sprintf("%v at offset %d", bad, off)
	} else {
		reason = fmt.Sprintf("segment ends inside a batch (seq %d..%d written of %d..%d)",
			seg.lastSeq+1, expect-1, seg.lastSeq+1, batchEnd)
	}
	if !last {
		return nil, corrupt(off, expect, "sealed segment: %s", reason)
	}
	// The tail candidate is everything after the last complete batch. It is
	// a torn tail only if every valid frame in it belongs to one batch, the
	// one whose write was in progress: any frame of a later batch proves the
	// damaged batch was written and synced before, so the damage is not
	// from a torn write.
	if !inBatch {
		frames = 0
	}
	known := inBatch
	lastFound := expect - 1
	if bad != nil {
		o := off + frameAlign
		if b, err := r.at(off, frameHeaderSize); err == nil {
			if n, err := frameHeader(b, s.maxData); err == nil {
				// The header (and so the length) is intact: skip the body, so
				// that bytes inside the payload are never taken for a frame.
				o = off + int64(n)
			}
		}
		for o+frameHeaderSize <= r.size {
			f, n, err := s.frameAt(r, o)
			if err != nil {
				if !errors.Is(err, errFrameShort) && !isFrameErr(err) {
					return nil, fmt.Errorf("filelog: read %s at offset %d: %w", seg.path, o, err)
				}
				o += frameAlign
				continue
			}
			end := f.seq + uint64(f.remaining)
			if (known && end != batchEnd) || f.seq <= lastFound {
				return nil, corrupt(off, expect, "%v, and a valid frame of another batch (seq %d) follows at offset %d",
					bad, f.seq, o)
			}
			known, batchEnd, lastFound = true, end, f.seq
			frames++
			o += int64(n)
		}
	}
	return &TornTail{Segment: seg.path, Offset: seg.end, Bytes: r.size - seg.end, Frames: frames, Reason: reason}, nil
}

// check verifies the hash-chain links queued since the last check, then
// makes the callbacks of the complete batches among them. If a link is
// broken, it makes the callbacks of the batches before that frame only and
// returns a *CorruptError for it. An error (a broken link or a callback's
// error) is also kept in s.err, for a check called by the reader.
func (s *segScanner) check(path string) error {
	if s.err != nil {
		return s.err
	}
	n := s.done
	if i, sum := s.chain.verify(); i >= 0 {
		j := &s.chain.jobs[i]
		s.err = &CorruptError{File: path, Offset: j.off, Seq: j.f.seq,
			Reason: fmt.Sprintf("hash chain broken: stored hash %x, computed %x", j.f.hash[:8], sum[:8])}
		n = 0 // the batches before the broken link's
		for n < s.done && (s.fn != nil && s.pending[n].Seq < j.batch || s.fnMeta != nil && s.metas[n].seq < j.batch) {
			n++
		}
	}
	s.chain.jobs = s.chain.jobs[:0]
	for _, rec := range s.pending[:min(n, len(s.pending))] {
		if err := s.fn(rec); err != nil {
			s.err = err
			return err
		}
	}
	for _, m := range s.metas[:min(n, len(s.metas))] {
		if err := s.fnMeta(m.seq, m.pseq, s.prods[m.p0:m.p1], m.time); err != nil {
			s.err = err
			return err
		}
	}
	if n > 0 {
		s.pending = s.pending[:copy(s.pending, s.pending[min(n, len(s.pending)):])]
		if n < len(s.metas) {
			base := s.metas[n].p0
			s.prods = s.prods[:copy(s.prods, s.prods[base:])]
			s.metas = s.metas[:copy(s.metas, s.metas[n:])]
			for i := range s.metas {
				s.metas[i].p0 -= base
				s.metas[i].p1 -= base
			}
		} else {
			s.metas, s.prods = s.metas[:0], s.prods[:0]
		}
		s.done -= n
	}
	return s.err
}

// frameAt decodes the frame at off.
func (s *segScanner) frameAt(r *reader, off int64) (frame, int, error) {
	b, err := r.at(off, frameHeaderSize)
	if err != nil {
		return frame{}, 0, err
	}
	n, err := frameHeader(b, s.maxData)
	if err != nil {
		return frame{}, 0, err
	}
	if off+int64(n) > r.size {
		return frame{}, 0, errFrameShort
	}
	if b, err = r.at(off, n); err != nil {
		return frame{}, 0, err
	}
	f, n, err := decodeFrame(b, s.maxData)
	return f, n, err
}

func isFrameErr(err error) bool {
	switch err {
	case errFrameShort, errFrameVersion, errFrameHeaderCRC, errFrameReserved, errFrameLength, errFrameCRC, errFramePadding:
		return true
	}
	return false
}
