package filelog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"runtime"
	"slices"
	"sync"

	"github.com/nodb-dev/nodb/host/eventlog"
)

// The on-disk format. FORMAT.md is the specification; keep the two in step.
const (
	// FormatVersion is the version written in every segment header and
	// record frame. Readers refuse versions they do not know.
	FormatVersion = 1

	segMagic      = "nodb-log"
	segHeaderSize = 64 // bytes; also where the first frame starts

	frameHeaderSize = 44                    // fixed fields + header CRC
	frameTrailer    = eventlog.HashSize + 4 // chain hash + frame CRC
	frameOverhead   = frameHeaderSize + frameTrailer
	frameAlign      = 8

	// maxDataLimit bounds Config.MaxRecordSize: the data length field is a
	// u32 and a frame must fit in an int on 32-bit platforms.
	maxDataLimit = 1 << 30
	maxStringLen = 1<<16 - 1 // producer and type lengths are u16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameSize is the size on disk of a frame whose data (producer, type and
// payload) is n bytes long, padding included.
func frameSize(n int) int {
	return (frameOverhead + n + frameAlign - 1) &^ (frameAlign - 1)
}

// Segment header, little-endian:
//
//	0  8  magic "nodb-log"
//	8  4  format version
//	12 4  reserved, zero
//	16 8  first seq
//	24 32 previous hash (Hash of seq first-1, zero for seq 1)
//	56 4  reserved, zero
//	60 4  CRC32-C of bytes 0..59
type segHeader struct {
	firstSeq uint64
	prevHash eventlog.Hash
}

func (h *segHeader) encode() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint32(b[8:], FormatVersion)
	binary.LittleEndian.PutUint64(b[16:], h.firstSeq)
	copy(b[24:56], h.prevHash[:])
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

func decodeSegHeader(b []byte) (segHeader, error) {
	var h segHeader
	if len(b) < segHeaderSize {
		return h, fmt.Errorf("segment header is %d bytes, want %d", len(b), segHeaderSize)
	}
	if string(b[:8]) != segMagic {
		return h, fmt.Errorf("bad magic %q", b[:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc32.Checksum(b[:60], castagnoli); got != want {
		return h, fmt.Errorf("segment header CRC %08x, computed %08x", got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != FormatVersion {
		return h, fmt.Errorf("unknown format version %d", v)
	}
	if binary.LittleEndian.Uint32(b[12:]) != 0 || binary.LittleEndian.Uint32(b[56:]) != 0 {
		return h, errors.New("reserved header bytes not zero")
	}
	h.firstSeq = binary.LittleEndian.Uint64(b[16:])
	copy(h.prevHash[:], b[24:56])
	if h.firstSeq == 0 || h.firstSeq > eventlog.MaxSeq {
		return h, fmt.Errorf("first seq %d out of range", h.firstSeq)
	}
	return h, nil
}

// Record frame, little-endian, starting at an 8-byte aligned offset:
//
//	0  1  version (1)
//	1  1  flags, zero
//	2  2  producer length P
//	4  2  type length T
//	6  2  reserved, zero
//	8  4  data length L = P + T + payload length, <= MaxRecordSize
//	12 4  batch remaining R: records after this one in the same Append
//	16 8  seq
//	24 8  pseq
//	32 8  time (Unix ns, signed)
//	40 4  header CRC32-C of bytes 0..39
//	44 L  producer | type | payload
//	   32 chain hash
//	   4  frame CRC32-C of every byte from 0 up to here
//	      zero padding to a multiple of 8
type frame struct {
	seq, pseq uint64
	time      int64
	remaining uint32
	producer  []byte // these three alias the decoded buffer
	typ       []byte
	payload   []byte
	hash      eventlog.Hash
}

// Reasons a frame does not decode. errFrameShort means the bytes end before
// the frame does; every other error means the bytes are not a frame.
var (
	errFrameShort     = errors.New("frame extends past the end of the data")
	errFrameVersion   = errors.New("unknown frame version")
	errFrameHeaderCRC = errors.New("frame header CRC mismatch")
	errFrameReserved  = errors.New("reserved frame bytes not zero")
	errFrameLength    = errors.New("frame length out of bounds")
	errFrameCRC       = errors.New("frame CRC mismatch")
	errFramePadding   = errors.New("frame padding not zero")
)

// frameHeader checks the fixed header at the start of b, and returns the
// size of the whole frame. The length is only trusted after the header CRC
// matched and it is within maxData.
func frameHeader(b []byte, maxData int) (size int, err error) {
	if len(b) < frameHeaderSize {
		return 0, errFrameShort
	}
	if b[0] != FormatVersion {
		return 0, errFrameVersion
	}
	if binary.LittleEndian.Uint32(b[40:]) != crc32.Checksum(b[:40], castagnoli) {
		return 0, errFrameHeaderCRC
	}
	if b[1] != 0 || b[6] != 0 || b[7] != 0 {
		return 0, errFrameReserved
	}
	p := int(binary.LittleEndian.Uint16(b[2:]))
	t := int(binary.LittleEndian.Uint16(b[4:]))
	n := binary.LittleEndian.Uint32(b[8:])
	if uint64(n) > uint64(maxData) || p+t > int(n) {
		return 0, errFrameLength
	}
	return frameSize(int(n)), nil
}

// decodeFrame decodes the frame at the start of b, checking both CRCs and
// the padding, and returns it and its size. The frame's slices alias b.
func decodeFrame(b []byte, maxData int) (frame, int, error) {
	var f frame
	size, err := frameHeader(b, maxData)
	if err != nil {
		return f, 0, err
	}
	if len(b) < size {
		return f, 0, errFrameShort
	}
	n := int(binary.LittleEndian.Uint32(b[8:]))
	end := frameHeaderSize + n + eventlog.HashSize
	if binary.LittleEndian.Uint32(b[end:]) != crc32.Checksum(b[:end], castagnoli) {
		return f, 0, errFrameCRC
	}
	for _, c := range b[end+4 : size] {
		if c != 0 {
			return f, 0, errFramePadding
		}
	}
	p := frameHeaderSize + int(binary.LittleEndian.Uint16(b[2:]))
	t := p + int(binary.LittleEndian.Uint16(b[4:]))
	d := frameHeaderSize + n
	f.remaining = binary.LittleEndian.Uint32(b[12:])
	f.seq = binary.LittleEndian.Uint64(b[16:])
	f.pseq = binary.LittleEndian.Uint64(b[24:])
	f.time = int64(binary.LittleEndian.Uint64(b[32:]))
	f.producer = b[frameHeaderSize:p:p]
	f.typ = b[p:t:t]
	f.payload = b[t:d:d]
	copy(f.hash[:], b[d:end])
	return f, size, nil
}

// appendFrame appends r's frame to dst. r.Hash must be set; the lengths must
// have been checked (checkRecord).
func appendFrame(dst []byte, r *eventlog.Record, remaining uint32) []byte {
	n := len(r.Producer) + len(r.Type) + len(r.Payload)
	size := frameSize(n)
	start := len(dst)
	if cap(dst)-start < size {
		grown := make([]byte, start, 2*cap(dst)+size)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+size]
	b := dst[start:]
	b[0], b[1], b[6], b[7] = FormatVersion, 0, 0, 0
	binary.LittleEndian.PutUint16(b[2:], uint16(len(r.Producer)))
	binary.LittleEndian.PutUint16(b[4:], uint16(len(r.Type)))
	binary.LittleEndian.PutUint32(b[8:], uint32(n))
	binary.LittleEndian.PutUint32(b[12:], remaining)
	binary.LittleEndian.PutUint64(b[16:], r.Seq)
	binary.LittleEndian.PutUint64(b[24:], r.PSeq)
	binary.LittleEndian.PutUint64(b[32:], uint64(r.Time))
	binary.LittleEndian.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
	i := frameHeaderSize
	i += copy(b[i:], r.Producer)
	i += copy(b[i:], r.Type)
	i += copy(b[i:], r.Payload)
	i += copy(b[i:], r.Hash[:])
	binary.LittleEndian.PutUint32(b[i:], crc32.Checksum(b[:i], castagnoli))
	clear(b[i+4:])
	return dst
}

// checkRecord checks that r fits in a frame.
func checkRecord(r *eventlog.Record, maxData int) error {
	if len(r.Producer) > maxStringLen || len(r.Type) > maxStringLen {
		return fmt.Errorf("filelog: seq %d: producer (%d bytes) or type (%d bytes) longer than %d: %w",
			r.Seq, len(r.Producer), len(r.Type), maxStringLen, ErrTooLarge)
	}
	if n := len(r.Producer) + len(r.Type) + len(r.Payload); n > maxData {
		return fmt.Errorf("filelog: seq %d: record is %d bytes, MaxRecordSize is %d: %w",
			r.Seq, n, maxData, ErrTooLarge)
	}
	return nil
}

// chainCheck checks hash-chain links in parallel. Every frame stores its
// own chain hash, so the link from frame i-1 to frame i can be checked
// knowing only the hash frame i-1 stores: the links are independent of one
// another, and the chain holds if and only if every link does. Opening a
// log spends about half its time in SHA-256, which this spreads over the
// cores; the rest of the scan (framing, CRCs, sequence and batch checks)
// stays in order.
type chainCheck struct {
	jobs    []hashJob
	hashers []*chainHasher
	bad     []int           // per worker: the first broken link it found
	sums    []eventlog.Hash // per worker: that link's computed hash
}

// hashJob is one link to check: f's stored hash must be ChainHash(prev, f).
// f aliases the reader's window, so jobs are checked before it moves.
type hashJob struct {
	prev  eventlog.Hash
	f     frame
	off   int64
	batch uint64 // the first seq of f's batch
}

// minLinksPerWorker keeps small checks (short logs, the reader's last
// window) on the calling goroutine.
const minLinksPerWorker = 512

func (c *chainCheck) add(prev eventlog.Hash, f frame, off int64, batch uint64) {
	c.jobs = append(c.jobs, hashJob{prev: prev, f: f, off: off, batch: batch})
}

// verify checks the queued links. It returns the index in c.jobs of the
// first broken one and the hash computed for it, or -1.
func (c *chainCheck) verify() (int, eventlog.Hash) {
	workers := max(1, min(runtime.GOMAXPROCS(0), len(c.jobs)/minLinksPerWorker))
	for len(c.hashers) < workers {
		c.hashers = append(c.hashers, newChainHasher())
	}
	c.bad, c.sums = slices.Grow(c.bad[:0], workers)[:workers], slices.Grow(c.sums[:0], workers)[:workers]
	per := (len(c.jobs) + workers - 1) / workers
	run := func(w int) {
		c.bad[w] = -1
		for i := w * per; i < min(len(c.jobs), (w+1)*per); i++ {
			j := &c.jobs[i]
			if h := c.hashers[w].frame(&j.prev, &j.f); h != j.f.hash {
				c.bad[w], c.sums[w] = i, h
				return
			}
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { run(w) })
	}
	run(0)
	wg.Wait()
	for w := range workers { // in order: the first broken link in the file
		if c.bad[w] >= 0 {
			return c.bad[w], c.sums[w]
		}
	}
	return -1, eventlog.Hash{}
}

// chainHasher computes eventlog.ChainHash without allocating.
type chainHasher struct {
	h   hash.Hash
	buf []byte
	sum []byte
}

func newChainHasher() *chainHasher {
	return &chainHasher{h: sha256.New(), buf: make([]byte, 0, 256), sum: make([]byte, 0, sha256.Size)}
}

// hash returns ChainHash(prev, r) for the record with these fields.
func chainHash[S string | []byte](c *chainHasher, prev *eventlog.Hash, seq, pseq uint64, time int64, producer, typ S, payload []byte) eventlog.Hash {
	b := append(c.buf[:0], prev[:]...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, pseq)
	b = binary.BigEndian.AppendUint64(b, uint64(time))
	b = binary.BigEndian.AppendUint32(b, uint32(len(producer)))
	b = append(b, producer...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(typ)))
	b = append(b, typ...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	var out eventlog.Hash
	if len(b)+len(payload) <= 4096 { // one contiguous buffer: no interface calls
		b = append(b, payload...)
		out = sha256.Sum256(b)
	} else {
		c.h.Reset()
		c.h.Write(b)
		c.h.Write(payload)
		copy(out[:], c.h.Sum(c.sum[:0]))
	}
	if cap(b) <= 8192 {
		c.buf = b[:0]
	}
	return out
}

func (c *chainHasher) record(prev *eventlog.Hash, r *eventlog.Record) eventlog.Hash {
	return chainHash(c, prev, r.Seq, r.PSeq, r.Time, r.Producer, r.Type, r.Payload)
}

func (c *chainHasher) frame(prev *eventlog.Hash, f *frame) eventlog.Hash {
	return chainHash(c, prev, f.seq, f.pseq, f.time, f.producer, f.typ, f.payload)
}
