package filelog

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"pgregory.net/rapid"

	"github.com/nodb-dev/nodb/host/eventlog"
)

func genRecord(t *rapid.T) eventlog.Record {
	return eventlog.Record{
		Seq:      rapid.Uint64Range(1, eventlog.MaxSeq).Draw(t, "seq"),
		Producer: rapid.StringN(0, 40, 300).Draw(t, "producer"),
		PSeq:     rapid.Uint64().Draw(t, "pseq"),
		Time:     rapid.Int64().Draw(t, "time"),
		Type:     rapid.StringN(0, 40, 300).Draw(t, "type"),
		Payload:  rapid.SliceOfN(rapid.Byte(), 0, 6000).Draw(t, "payload"),
	}
}

// The allocation-free hasher must agree with eventlog.ChainHash, on both its
// paths (short records in one buffer, long ones streamed).
func TestChainHashMatches(t *testing.T) {
	c := newChainHasher()
	rapid.Check(t, func(t *rapid.T) {
		r := genRecord(t)
		var prev eventlog.Hash
		copy(prev[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "prev"))
		want := eventlog.ChainHash(prev, &r)
		if got := c.record(&prev, &r); got != want {
			t.Fatalf("chainHasher.record = %x, want %x", got, want)
		}
		f := frame{seq: r.Seq, pseq: r.PSeq, time: r.Time, producer: []byte(r.Producer), typ: []byte(r.Type), payload: r.Payload}
		if got := c.frame(&prev, &f); got != want {
			t.Fatalf("chainHasher.frame = %x, want %x", got, want)
		}
	})
}

func TestFrameRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRecord(t)
		copy(r.Hash[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "hash"))
		rem := rapid.Uint32().Draw(t, "remaining")
		junk := rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "prefix")
		b := appendFrame(bytes.Clone(junk), &r, rem)[len(junk):]
		if len(b)%frameAlign != 0 || len(b) != frameSize(len(r.Producer)+len(r.Type)+len(r.Payload)) {
			t.Fatalf("frame is %d bytes", len(b))
		}
		f, n, err := decodeFrame(append(bytes.Clone(b), 1, 2, 3), maxDataLimit)
		if err != nil || n != len(b) {
			t.Fatalf("decode: %d, %v", n, err)
		}
		if f.seq != r.Seq || f.pseq != r.PSeq || f.time != r.Time || f.remaining != rem || f.hash != r.Hash ||
			string(f.producer) != r.Producer || string(f.typ) != r.Type || !bytes.Equal(f.payload, r.Payload) {
			t.Fatalf("decoded %+v from %+v", f, r)
		}
		// Every strict prefix is short, never a different frame.
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		if _, _, err := decodeFrame(b[:cut], maxDataLimit); !errors.Is(err, errFrameShort) {
			t.Fatalf("prefix of %d bytes: %v", cut, err)
		}
		// Any one flipped bit is caught.
		bit := rapid.IntRange(0, len(b)*8-1).Draw(t, "bit")
		b[bit/8] ^= 1 << (bit % 8)
		if _, _, err := decodeFrame(b, maxDataLimit); err == nil {
			t.Fatalf("bit %d flipped and the frame still decodes", bit)
		}
	})
}

func TestFrameLengthBound(t *testing.T) {
	r := eventlog.Record{Seq: 1, Type: "t", Payload: make([]byte, 100)}
	b := appendFrame(nil, &r, 0)
	if _, _, err := decodeFrame(b, 101); err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeFrame(b, 100); !errors.Is(err, errFrameLength) {
		t.Fatalf("length above the bound: %v", err)
	}
}

func TestSegHeaderRoundTrip(t *testing.T) {
	h := segHeader{firstSeq: 12345, prevHash: eventlog.Hash{1, 2, 3, 31: 9}}
	b := h.encode()
	got, err := decodeSegHeader(b)
	if err != nil || got != h {
		t.Fatalf("decode = %+v, %v", got, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if _, err := decodeSegHeader(c); err == nil {
			t.Fatalf("flipped byte %d of the header went unnoticed", i)
		}
	}
}

// The encoder must not allocate once its buffer has grown: the chronicler
// calls it for every event.
func TestEncodeAllocs(t *testing.T) {
	recs := benchRecords(256, 200)
	c := newChainHasher()
	buf := make([]byte, 0, 1<<20)
	allocs := testing.AllocsPerRun(20, func() {
		var prev eventlog.Hash
		buf = buf[:0]
		for i := range recs {
			recs[i].Hash = c.record(&prev, &recs[i])
			prev = recs[i].Hash
			buf = appendFrame(buf, &recs[i], uint32(len(recs)-1-i))
		}
	})
	if allocs != 0 {
		t.Fatalf("encoding a batch allocates %v times", allocs)
	}
}

func benchRecords(n, size int) []eventlog.Record {
	recs := make([]eventlog.Record, n)
	payload := bytes.Repeat([]byte("x"), size)
	payload[0], payload[size-1] = '"', '"'
	for i := range recs {
		recs[i] = eventlog.Record{Seq: uint64(i + 1), Producer: "bench-producer", PSeq: uint64(i + 1),
			Time: 1_700_000_000_000_000_000, Type: "bench/event", Payload: payload}
	}
	return recs
}

// BenchmarkEncode is the CPU cost of Append per event, without the I/O:
// chain hash plus frame encoding.
func BenchmarkEncode(b *testing.B) {
	recs := benchRecords(256, 200)
	c := newChainHasher()
	var buf []byte
	var prev eventlog.Hash
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range recs {
			recs[i].Hash = c.record(&prev, &recs[i])
			prev = recs[i].Hash
			buf = appendFrame(buf, &recs[i], uint32(len(recs)-1-i))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/event")
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder: it must not
// panic, and whatever it accepts must re-encode to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := decodeFrame(b, 1<<20)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with size %d", err, n)
			}
			return
		}
		if n > len(b) || n%frameAlign != 0 {
			t.Fatalf("size %d of %d bytes", n, len(b))
		}
		r := eventlog.Record{Seq: fr.seq, PSeq: fr.pseq, Time: fr.time, Producer: string(fr.producer),
			Type: string(fr.typ), Payload: fr.payload, Hash: fr.hash}
		if again := appendFrame(nil, &r, fr.remaining); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding gives different bytes:\n%x\n%x", again, b[:n])
		}
	})
}

// FuzzScanSegment runs recovery's segment scanner over arbitrary bytes after
// a valid segment header: it must not panic, and must either accept a prefix
// of whole frames, report a torn tail inside the data, or report corruption.
func FuzzScanSegment(f *testing.F) {
	h := (&segHeader{firstSeq: 1}).encode()
	var log []byte
	var prev eventlog.Hash
	c := newChainHasher()
	recs := benchRecords(6, 30)
	for i := range recs {
		recs[i].Hash = c.record(&prev, &recs[i])
		prev = recs[i].Hash
		log = appendFrame(log, &recs[i], uint32((5-i)%3))
	}
	f.Add(log)
	f.Add(log[:len(log)-7])
	f.Add(append(bytes.Clone(log), make([]byte, 64)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		data := append(bytes.Clone(h), body...)
		s := &segScanner{maxData: 1 << 20}
		seg := &segInfo{name: "x.seg", path: "x.seg", hdr: segHeader{firstSeq: 1}}
		r := &reader{f: bytesFile(data), size: int64(len(data)), win: 4096}
		torn, err := s.scan(r, seg, nil, true)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Offset < segHeaderSize || ce.Offset >= int64(len(data)) {
				t.Fatalf("scan error %v", err)
			}
			return
		}
		if seg.end < segHeaderSize || seg.end > int64(len(data)) {
			t.Fatalf("end %d of %d bytes", seg.end, len(data))
		}
		if torn == nil && seg.end != int64(len(data)) {
			t.Fatalf("no torn tail but end %d of %d bytes", seg.end, len(data))
		}
		if torn != nil && (torn.Offset != seg.end || torn.Offset+torn.Bytes != int64(len(data)) || torn.Bytes == 0) {
			t.Fatalf("torn %+v, end %d of %d bytes", torn, seg.end, len(data))
		}
	})
}

type bytesFile []byte

func (b bytesFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(b).ReadAt(p, off)
}
func (bytesFile) WriteAt([]byte, int64) (int, error) { return 0, errors.ErrUnsupported }
func (bytesFile) Close() error                       { return nil }
func (bytesFile) Sync() error                        { return nil }
func (bytesFile) Truncate(int64) error               { return errors.ErrUnsupported }
func (bytesFile) Stat() (os.FileInfo, error)         { return nil, errors.ErrUnsupported }

func frameSeeds() [][]byte {
	var seeds [][]byte
	r := eventlog.Record{Seq: 7, Producer: "browser-1", PSeq: 3, Time: 1_700_000_000_000_000_000,
		Type: "todo/add", Payload: []byte(`{"title":"milk"}`), Hash: eventlog.Hash{0xaa, 31: 0x55}}
	full := appendFrame(nil, &r, 2)
	seeds = append(seeds, full, full[:frameHeaderSize], full[:len(full)-3], append(bytes.Clone(full), full...))
	empty := appendFrame(nil, &eventlog.Record{Seq: 1}, 0)
	seeds = append(seeds, empty, make([]byte, 64))
	bad := bytes.Clone(full)
	bad[50] ^= 1
	seeds = append(seeds, bad)
	return seeds
}
