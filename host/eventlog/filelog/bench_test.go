package filelog_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

func benchBatch(n, size int) []eventlog.Record {
	recs := make([]eventlog.Record, n)
	payload := bytes.Repeat([]byte("x"), size)
	payload[0], payload[size-1] = '"', '"'
	for i := range recs {
		recs[i] = eventlog.Record{Producer: "bench-producer", PSeq: uint64(i + 1),
			Time: 1_700_000_000_000_000_000, Type: "bench/event", Payload: payload}
	}
	return recs
}

// BenchmarkAppend appends batches of 256 events of 200-byte payloads to a
// log in a temporary directory, with a real fdatasync per batch.
func BenchmarkAppend(b *testing.B) {
	const batch, size = 256, 200
	l, err := filelog.Open(filelog.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	recs := benchBatch(batch, size)
	ctx := context.Background()
	seq := uint64(1)
	b.SetBytes(batch * size)
	b.ReportAllocs()
	for b.Loop() {
		for i := range recs {
			recs[i].Seq = seq
			seq++
		}
		if err := l.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRead reads a log back in chunks of 256, as a view catching up does.
func BenchmarkRead(b *testing.B) {
	const total = 100_000
	l, err := filelog.Open(filelog.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	recs := benchBatch(1000, 200)
	for seq := uint64(1); seq <= total; {
		for i := range recs {
			recs[i].Seq = seq
			seq++
		}
		if err := l.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	var buf []eventlog.Record
	from := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = l.Read(ctx, from, 256, buf); err != nil {
			b.Fatal(err)
		}
		if from += 256; from > total {
			from = 1
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOpen opens a log of 1M events of 60-byte payloads (about 140 MB,
// three segments, in the page cache): what a restart pays before serving,
// since Open checks every frame's CRC and the hash chain and reports every
// record to OnRecord (the chronicler's dedupe table).
func BenchmarkOpen(b *testing.B) {
	const total = 1_000_000
	dir := b.TempDir()
	l, err := filelog.Open(filelog.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	recs := benchBatch(4096, 60)
	for seq := uint64(1); seq <= total; {
		n := min(len(recs), int(total-seq+1))
		for i := range recs[:n] {
			recs[i].Seq, recs[i].PSeq = seq, seq
			seq++
		}
		if err := l.Append(ctx, recs[:n]); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	var seen uint64
	cfg := filelog.Config{Dir: dir, OnRecord: func(seq, pseq uint64, producer []byte, time int64) error {
		seen++
		return nil
	}}
	b.ResetTimer()
	for b.Loop() {
		seen = 0
		l, err := filelog.Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if l.LastSeq() != total || seen != total {
			b.Fatalf("opened to seq %d with %d records reported, want %d", l.LastSeq(), seen, total)
		}
		l.Close()
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
