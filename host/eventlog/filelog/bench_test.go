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
