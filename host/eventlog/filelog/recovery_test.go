package filelog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/eventlogtest"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

// setup writes want(n) to a new log in batches of the given sizes, closes
// it, and returns the directory, the only segment's path and its bytes.
func setup(t *testing.T, n int, sizes ...int) (dir, seg string, data []byte) {
	t.Helper()
	dir = t.TempDir()
	l := openLog(t, filelog.Config{Dir: dir})
	appendBatches(t, l, eventlogtest.Records(1, n), sizes...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("got %d segments, want 1", len(segs))
	}
	return dir, segs[0], readFile(t, segs[0])
}

// TestTornTailEveryOffset cuts the last record (appended alone) at every
// byte offset: Open must keep exactly the records before it, save the cut
// bytes, and continue the chain on the next Append.
func TestTornTailEveryOffset(t *testing.T) {
	const n = 12
	dir, seg, data := setup(t, n, 5, 6, 1)
	all := want(n)
	offs := frames(t, data)
	last := offs[n-1]
	if int64(len(data)) != last+frameSize(len(all[n-1].Producer)+len(all[n-1].Type)+len(all[n-1].Payload)) {
		t.Fatalf("segment size %d does not end with the last frame at %d", len(data), last)
	}
	tornDir := filepath.Join(dir, filelog.SubDir, "torn")
	for cut := last; cut < int64(len(data)); cut++ {
		writeFile(t, seg, data[:cut])
		os.RemoveAll(tornDir)
		l, err := filelog.Open(filelog.Config{Dir: dir})
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		checkRecords(t, l, all[:n-1])
		rec := l.Recovery()
		if cut == last {
			if rec.Torn != nil {
				t.Fatalf("cut at a frame boundary %d: reported torn tail %+v", cut, rec.Torn)
			}
		} else {
			tt := rec.Torn
			if tt == nil || tt.Segment != seg || tt.Offset != last || tt.Bytes != cut-last || tt.Frames != 0 {
				t.Fatalf("cut at %d: Recovery().Torn = %+v, want offset %d, %d bytes", cut, tt, last, cut-last)
			}
			if saved := readFile(t, tt.SavedAs); !bytes.Equal(saved, data[last:cut]) {
				t.Fatalf("cut at %d: saved tail holds %d bytes, not the %d cut", cut, len(saved), cut-last)
			}
			if filepath.Dir(tt.SavedAs) != tornDir {
				t.Fatalf("tail saved to %s, want it in %s", tt.SavedAs, tornDir)
			}
		}
		if fi, _ := os.Stat(seg); fi.Size() != last {
			t.Fatalf("cut at %d: segment is %d bytes after recovery, want %d", cut, fi.Size(), last)
		}
		// Appending continues the chain: seq n gets the same hash again.
		rec1 := eventlogtest.Records(n, 1)
		if err := l.Append(context.Background(), rec1); err != nil {
			t.Fatalf("cut at %d: Append after recovery: %v", cut, err)
		}
		if rec1[0].Hash != all[n-1].Hash {
			t.Fatalf("cut at %d: chain does not continue", cut)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readFile(t, seg), data) {
			t.Fatalf("cut at %d: segment differs from the original after re-appending the record", cut)
		}
	}
}

// TestTornTailsAtTheSameOffsetAreAllKept: a torn tail is cut at the end of
// the last complete batch, and the next batch is written at that same
// offset; if it is torn in turn, the first saved tail must not be replaced
// by the second. The first may hold records that were acknowledged (damage
// in the last batch looks torn, FORMAT.md), and torn/ is their only copy.
func TestTornTailsAtTheSameOffsetAreAllKept(t *testing.T) {
	const n = 4
	dir, seg, data := setup(t, n, 3, 1)
	last := frames(t, data)[n-1]
	writeFile(t, seg, flip(data, last+50, 0)) // the last batch damaged
	l, err := filelog.Open(filelog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first := l.Recovery().Torn
	if first == nil || first.Offset != last {
		t.Fatalf("first Open: Torn = %+v, want a tail at %d", first, last)
	}
	firstBytes := readFile(t, first.SavedAs)
	// Another record n is written at the same offset, and torn too.
	other := eventlogtest.Records(n, 1)
	other[0].Payload = []byte(`"another"`)
	if err := l.Append(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	l.Close()
	again := readFile(t, seg)
	writeFile(t, seg, again[:len(again)-3])
	l, err = filelog.Open(filelog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	second := l.Recovery().Torn
	if second == nil || second.Offset != last {
		t.Fatalf("second Open: Torn = %+v, want a tail at %d", second, last)
	}
	if second.SavedAs == first.SavedAs {
		t.Fatalf("both tails saved as %s", first.SavedAs)
	}
	if got := readFile(t, first.SavedAs); !bytes.Equal(got, firstBytes) {
		t.Fatalf("the first tail saved (%d bytes) was replaced (%d bytes)", len(firstBytes), len(got))
	}
	if got := readFile(t, second.SavedAs); !bytes.Equal(got, again[last:len(again)-3]) {
		t.Fatalf("the second tail saved holds %d bytes, not the %d cut", len(got), len(again)-3-int(last))
	}
}

// A crash during a multi-record Append leaves some of the batch's frames:
// the whole batch is cut, and an Append batch is atomic across crashes.
func TestTornBatchIsCutWhole(t *testing.T) {
	const n = 30
	dir, seg, data := setup(t, n, 10) // batches 1-10, 11-20, 21-30
	offs := frames(t, data)
	all := want(n)
	cases := map[string][]byte{
		// The write stopped inside record 25.
		"partial": data[:offs[24]+20],
		// Every frame of the batch is on disk but one page in the middle
		// never reached it (the file system may write pages in any order).
		"hole": func() []byte {
			b := bytes.Clone(data)
			clear(b[offs[23]+3 : offs[26]+8])
			return b
		}(),
		// Zeros after the last complete batch (a file extended but never
		// written, as some file systems leave after a crash).
		"zeros": append(bytes.Clone(data[:offs[20]]), make([]byte, 4096)...),
		// Only the commit frame (seq 30) is bad.
		"last frame bad": func() []byte {
			b := bytes.Clone(data)
			b[offs[29]+50] ^= 0x10
			return b
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			writeFile(t, seg, b)
			rep, err := filelog.Verify(dir, nil)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.Torn == nil || rep.Torn.Offset != offs[20] || rep.LastSeq != 20 {
				t.Fatalf("Verify: torn %+v, last seq %d; want a torn tail at %d after seq 20", rep.Torn, rep.LastSeq, offs[20])
			}
			l := openLog(t, filelog.Config{Dir: dir})
			checkRecords(t, l, all[:20])
			if tt := l.Recovery().Torn; tt == nil || tt.Offset != offs[20] || tt.Bytes != int64(len(b))-offs[20] {
				t.Fatalf("Recovery().Torn = %+v, want offset %d", tt, offs[20])
			}
			appendBatches(t, l, eventlogtest.Records(21, 10), 10)
			checkRecords(t, l, all)
			l.Close()
		})
	}
}

// flip returns data with one bit flipped at off.
func flip(data []byte, off int64, bit int) []byte {
	b := bytes.Clone(data)
	b[off] ^= 1 << (bit % 8)
	return b
}

func wantCorrupt(t *testing.T, err error, file string, off int64, seq uint64) {
	t.Helper()
	if !errors.Is(err, eventlog.ErrCorrupt) {
		t.Fatalf("error %v does not wrap ErrCorrupt", err)
	}
	var ce *filelog.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CorruptError", err)
	}
	if ce.File != file || ce.Offset != off || ce.Seq != seq {
		t.Fatalf("CorruptError names %s offset %d seq %d, want %s offset %d seq %d (%v)",
			ce.File, ce.Offset, ce.Seq, file, off, seq, err)
	}
}

// TestFlippedBitMidLog flips each bit position of every byte of a middle
// record: Open and Verify must refuse, naming the file, offset and seq.
func TestFlippedBitMidLog(t *testing.T) {
	const n = 20
	dir, seg, data := setup(t, n, 3, 1, 4)
	offs := frames(t, data)
	const bad = 9 // seq 10
	for off := offs[bad]; off < offs[bad+1]; off++ {
		writeFile(t, seg, flip(data, off, int(off)))
		_, err := filelog.Open(filelog.Config{Dir: dir})
		wantCorrupt(t, err, seg, offs[bad], bad+1)
		_, err = filelog.Verify(dir, nil)
		wantCorrupt(t, err, seg, offs[bad], bad+1)
	}
	// The commit frame of the second-to-last batch, with a one-record
	// batch after it.
	dir, seg, data = setup(t, 8, 7, 1)
	offs = frames(t, data)
	writeFile(t, seg, flip(data, offs[6]+60, 0))
	_, err := filelog.Open(filelog.Config{Dir: dir})
	wantCorrupt(t, err, seg, offs[6], 7)
}

// TestFlippedBitLastRecord: damage in the last batch is indistinguishable
// from a write torn by a crash, so it is cut as a torn tail (FORMAT.md).
func TestFlippedBitLastRecord(t *testing.T) {
	const n = 6
	dir, seg, data := setup(t, n, 5, 1)
	offs := frames(t, data)
	for off := offs[n-1]; off < int64(len(data)); off++ {
		writeFile(t, seg, flip(data, off, int(off)))
		l, err := filelog.Open(filelog.Config{Dir: dir})
		if err != nil {
			t.Fatalf("flip at %d: %v", off, err)
		}
		checkRecords(t, l, want(n-1))
		if tt := l.Recovery().Torn; tt == nil || tt.Offset != offs[n-1] {
			t.Fatalf("flip at %d: Torn = %+v", off, tt)
		}
		l.Close()
	}
}

// rewriteFrame changes a frame's payload in place (same length) and fixes
// both CRCs, as someone editing history would.
func rewriteFrame(data []byte, off int64, fixHash bool, prev eventlog.Hash, rec eventlog.Record) {
	b := data[off:]
	p, ty, n := int(binary.LittleEndian.Uint16(b[2:])), int(binary.LittleEndian.Uint16(b[4:])), int(binary.LittleEndian.Uint32(b[8:]))
	payload := b[44+p+ty : 44+n]
	payload[len(payload)-2] = 'X'
	if fixHash {
		rec.Payload = payload
		h := eventlog.ChainHash(prev, &rec)
		copy(b[44+n:], h[:])
	}
	end := 44 + n + 32
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], crc32.MakeTable(crc32.Castagnoli)))
}

func TestHashChainBreak(t *testing.T) {
	const n = 10
	dir, seg, data := setup(t, n, 2)
	offs := frames(t, data)
	all := want(n)

	// Edited payload, CRC fixed, stored hash left alone: seq 4 is wrong.
	b := bytes.Clone(data)
	rewriteFrame(b, offs[3], false, all[2].Hash, all[3])
	writeFile(t, seg, b)
	_, err := filelog.Open(filelog.Config{Dir: dir})
	wantCorrupt(t, err, seg, offs[3], 4)

	// Stored hash recomputed too: seq 4 is self-consistent, seq 5 no
	// longer chains onto it.
	b = bytes.Clone(data)
	rewriteFrame(b, offs[3], true, all[2].Hash, all[3])
	writeFile(t, seg, b)
	_, err = filelog.Verify(dir, nil)
	wantCorrupt(t, err, seg, offs[4], 5)
	// Even in the last batch: a frame whose CRC is fine was written by an
	// Append, so a wrong hash there is never a torn write.
	b = bytes.Clone(data)
	rewriteFrame(b, offs[9], false, all[8].Hash, all[9])
	writeFile(t, seg, b)
	_, err = filelog.Open(filelog.Config{Dir: dir})
	wantCorrupt(t, err, seg, offs[9], 10)

	// A record removed from the middle.
	b = append(bytes.Clone(data[:offs[5]]), data[offs[6]:]...)
	writeFile(t, seg, b)
	_, err = filelog.Open(filelog.Config{Dir: dir})
	wantCorrupt(t, err, seg, offs[5], 6)
}

// TestHashChainBreakFarIn breaks a link far into a segment, where the chain
// is checked in parallel, a window of the file at a time: the error names
// the first broken link, as a frame-by-frame check would, and the records
// reported before it are exactly those of the complete batches before it,
// in order, with the producers of OnRecord intact across windows.
func TestHashChainBreakFarIn(t *testing.T) {
	const n = 30_000
	dir, seg, data := setup(t, n, 100, 7, 250)
	offs := frames(t, data)
	all := want(n)
	if len(data) < 3<<20 {
		t.Fatalf("segment is %d bytes, want several of the reader's 1 MiB windows", len(data))
	}
	batchStart := func(seq uint64) uint64 { // the first seq of seq's batch
		for i, k := uint64(1), 0; ; k++ {
			size := uint64([]int{100, 7, 250}[k%3])
			if seq < i+size {
				return i
			}
			i += size
		}
	}
	for _, broken := range []int{20_001, 29_990, 9_000} { // 0-based: seq broken+1
		b := bytes.Clone(data)
		// Two edits, likely in one window but in different workers' shares:
		// the later one must not be the one reported.
		rewriteFrame(b, offs[broken], false, all[broken-1].Hash, all[broken])
		rewriteFrame(b, offs[min(broken+2500, n-1)], false, all[min(broken+2499, n-2)].Hash, all[min(broken+2500, n-1)])
		writeFile(t, seg, b)
		seq := uint64(broken + 1)
		var got []uint64
		_, err := filelog.Verify(dir, func(r eventlog.Record) error {
			if r.Hash != all[r.Seq-1].Hash {
				t.Fatalf("seq %d reported with hash %x, want %x", r.Seq, r.Hash[:8], all[r.Seq-1].Hash[:8])
			}
			got = append(got, r.Seq)
			return nil
		})
		wantCorrupt(t, err, seg, offs[broken], seq)
		if end := batchStart(seq) - 1; uint64(len(got)) != end || (end > 0 && got[end-1] != end) {
			t.Fatalf("break at seq %d: Verify reported %d records, want 1..%d", seq, len(got), end)
		}
		var metas int
		_, err = filelog.Open(filelog.Config{Dir: dir, OnRecord: func(s, pseq uint64, producer []byte, time int64) error {
			r := &all[s-1]
			if s != uint64(metas+1) || pseq != r.PSeq || string(producer) != r.Producer || time != r.Time {
				t.Fatalf("OnRecord(%d, %d, %q, %d), want record %d: %d, %q, %d", s, pseq, producer, time, metas+1, r.PSeq, r.Producer, r.Time)
			}
			metas++
			return nil
		}})
		wantCorrupt(t, err, seg, offs[broken], seq)
		if uint64(metas) != batchStart(seq)-1 {
			t.Fatalf("break at seq %d: OnRecord saw %d records, want %d", seq, metas, batchStart(seq)-1)
		}
	}
	// Intact, every record is reported once, in order.
	writeFile(t, seg, data)
	var metas int
	l, err := filelog.Open(filelog.Config{Dir: dir, OnRecord: func(s, pseq uint64, producer []byte, time int64) error {
		if s != uint64(metas+1) || string(producer) != all[s-1].Producer {
			t.Fatalf("OnRecord(%d, %q), want record %d", s, producer, metas+1)
		}
		metas++
		return nil
	}})
	if err != nil || metas != n {
		t.Fatalf("Open: %v, %d records reported, want %d", err, metas, n)
	}
	l.Close()
}

func TestSegmentRollover(t *testing.T) {
	dir := t.TempDir()
	cfg := filelog.Config{Dir: dir, SegmentSize: 8 << 10}
	l := openLog(t, cfg)
	const n = 2000
	all := want(n)
	appendBatches(t, l, eventlogtest.Records(1, n), 1, 17, 50, 3, 64)
	checkRecords(t, l, all)
	l.Close()

	segs := segFiles(t, dir)
	if len(segs) < 20 {
		t.Fatalf("only %d segments for %d records of 8 KiB segments", len(segs), n)
	}
	var firsts []uint64
	for _, s := range segs {
		data := readFile(t, s)
		// Over SegmentSize only when it holds a single batch bigger than it.
		if offs := frames(t, data); len(data) > 8<<10 && binary.LittleEndian.Uint32(data[offs[0]+12:]) != uint32(len(offs)-1) {
			t.Errorf("%s is %d bytes, over SegmentSize, and holds more than one batch", s, len(data))
		}
		firsts = append(firsts, binary.LittleEndian.Uint64(data[16:]))
	}

	// Reopen, read across every boundary, append more and reopen again.
	l = openLog(t, cfg)
	if rec := l.Recovery(); rec.Segments != len(segs) || rec.LastSeq != n || rec.Torn != nil {
		t.Fatalf("Recovery = %+v", rec)
	}
	checkRecords(t, l, all)
	ctx := context.Background()
	for _, f := range firsts[1:] {
		got, err := l.Read(ctx, f-2, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := eventlogtest.Equal(got, all[f-3:f+1]); err != nil {
			t.Fatalf("read across the boundary at seq %d: %v", f, err)
		}
	}
	more := want(n + 500)
	appendBatches(t, l, eventlogtest.Records(n+1, 500), 100)
	l.Close()
	l = openLog(t, cfg)
	checkRecords(t, l, more)
	l.Close()

	var seen uint64
	rep, err := filelog.Verify(dir, func(r eventlog.Record) error {
		if r.Seq != seen+1 || r.Hash != more[seen].Hash {
			t.Fatalf("Verify called fn with seq %d after %d", r.Seq, seen)
		}
		seen = r.Seq
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != n+500 || seen != n+500 || rep.LastHash != more[n+499].Hash || rep.Segments != len(segFiles(t, dir)) {
		t.Fatalf("Verify = %+v, fn saw %d", rep, seen)
	}
}

// Damage in a sealed segment is never a torn tail, even at its end.
func TestSealedSegmentDamage(t *testing.T) {
	dir := t.TempDir()
	cfg := filelog.Config{Dir: dir, SegmentSize: 4 << 10}
	l := openLog(t, cfg)
	appendBatches(t, l, eventlogtest.Records(1, 100), 5)
	l.Close()
	segs := segFiles(t, dir)
	data := readFile(t, segs[1])
	offs := frames(t, data)
	first := binary.LittleEndian.Uint64(data[16:])

	lastOff := offs[len(offs)-1]
	writeFile(t, segs[1], flip(data, lastOff+50, 3))
	_, err := filelog.Open(cfg)
	wantCorrupt(t, err, segs[1], lastOff, first+uint64(len(offs))-1)

	writeFile(t, segs[1], data[:len(data)-1]) // sealed segment cut short
	_, err = filelog.Open(cfg)
	wantCorrupt(t, err, segs[1], lastOff, first+uint64(len(offs))-1)

	// A header whose previous hash does not match the segment before it.
	hdr := bytes.Clone(data)
	hdr[30] ^= 1
	binary.LittleEndian.PutUint32(hdr[60:], crc32.Checksum(hdr[:60], crc32.MakeTable(crc32.Castagnoli)))
	writeFile(t, segs[1], hdr)
	_, err = filelog.Verify(dir, nil)
	wantCorrupt(t, err, segs[1], 0, first)

	writeFile(t, segs[1], flip(data, 9, 0)) // version field, header CRC fails
	_, err = filelog.Open(cfg)
	wantCorrupt(t, err, segs[1], 0, 0)

	writeFile(t, segs[1], data)
	os.Remove(segs[2]) // a missing segment in the middle breaks the chain
	_, err = filelog.Open(cfg)
	wantCorrupt(t, err, segs[3], 0, binary.LittleEndian.Uint64(readFile(t, segs[3])[16:]))
}

func TestLeftoverTempFileRemoved(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filelog.Config{Dir: dir})
	appendBatches(t, l, eventlogtest.Records(1, 3), 3)
	l.Close()
	tmp := filepath.Join(dir, filelog.SubDir, "00000000000000000004.seg.tmp")
	writeFile(t, tmp, []byte("half a header"))
	rep, err := filelog.Verify(dir, nil)
	if err != nil || len(rep.LeftoverTemps) != 1 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	l = openLog(t, filelog.Config{Dir: dir})
	if got := l.Recovery().TempFilesRemoved; len(got) != 1 || got[0] != tmp {
		t.Fatalf("TempFilesRemoved = %v", got)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temp file still there: %v", err)
	}
	checkRecords(t, l, want(3))
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filelog.Config{Dir: dir})
	if _, err := filelog.Open(filelog.Config{Dir: dir}); err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
	l.Close()
	openLog(t, filelog.Config{Dir: dir})
}

func TestTooLarge(t *testing.T) {
	l := openLog(t, filelog.Config{Dir: t.TempDir(), MaxRecordSize: 1000})
	recs := eventlogtest.Records(1, 2)
	recs[1].Payload = make([]byte, 1000)
	if err := l.Append(context.Background(), recs); !errors.Is(err, filelog.ErrTooLarge) {
		t.Fatalf("Append of an oversized record = %v, want ErrTooLarge", err)
	}
	if l.LastSeq() != 0 || l.Failed() != nil {
		t.Fatalf("rejected batch changed the log: last %d, failed %v", l.LastSeq(), l.Failed())
	}
	appendBatches(t, l, eventlogtest.Records(1, 2), 2)
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []filelog.Config{{}, {Dir: "x", SegmentSize: 100}, {Dir: "x", MaxRecordSize: -1}, {Dir: "x", MaxRecordSize: 2 << 30}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
		if _, err := filelog.Open(c); err == nil {
			t.Errorf("Open(%+v) succeeded", c)
		}
	}
	if err := filelog.DefaultConfig("x").Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

// TestOnRecordSeesWhatRecoveryKeeps: OnRecord gets every record the opened
// log holds, in seq order, with its producer, pseq and time, and none of a
// torn batch that recovery cuts.
func TestOnRecordSeesWhatRecoveryKeeps(t *testing.T) {
	const n = 30
	dir, seg, data := setup(t, n, 10) // batches 1-10, 11-20, 21-30
	offs := frames(t, data)
	all := want(n)
	for _, tc := range []struct {
		name string
		data []byte
		keep int
	}{{"whole", data, n}, {"torn last batch", data[:offs[24]+20], 20}} {
		writeFile(t, seg, tc.data)
		var got []eventlog.Record
		l, err := filelog.Open(filelog.Config{Dir: dir, OnRecord: func(seq, pseq uint64, producer []byte, time int64) error {
			got = append(got, eventlog.Record{Seq: seq, PSeq: pseq, Producer: string(producer), Time: time})
			return nil
		}})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if l.LastSeq() != uint64(tc.keep) || len(got) != tc.keep {
			t.Fatalf("%s: %d records reported, log holds %d, want %d", tc.name, len(got), l.LastSeq(), tc.keep)
		}
		for i, r := range got {
			w := all[i]
			if r.Seq != w.Seq || r.PSeq != w.PSeq || r.Producer != w.Producer || r.Time != w.Time {
				t.Fatalf("%s: record %d reported as %+v, want seq %d pseq %d producer %q time %d", tc.name, i, r, w.Seq, w.PSeq, w.Producer, w.Time)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// An error from OnRecord fails Open.
	if _, err := filelog.Open(filelog.Config{Dir: dir, OnRecord: func(uint64, uint64, []byte, int64) error { return errors.New("no") }}); err == nil {
		t.Fatal("Open succeeded although OnRecord failed")
	}
}
