package filelog_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/eventlogtest"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

// The layout constants below are written out from FORMAT.md on purpose, so
// the tests check the document as well as the code.
const (
	segHeaderSize = 64
	frameOverhead = 44 + 32 + 4
)

func frameSize(dataLen int) int64 { return int64((frameOverhead + dataLen + 7) &^ 7) }

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: tWriter{t}, Level: hclog.Debug})
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openLog(t *testing.T, cfg filelog.Config) *filelog.Log {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	l, err := filelog.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func appendBatches(t *testing.T, l eventlog.Log, recs []eventlog.Record, sizes ...int) {
	t.Helper()
	for i, k := 0, 0; i < len(recs); k++ {
		n := min(sizes[k%len(sizes)], len(recs)-i)
		if err := l.Append(context.Background(), recs[i:i+n]); err != nil {
			t.Fatalf("Append seq %d..%d: %v", recs[i].Seq, recs[i+n-1].Seq, err)
		}
		i += n
	}
}

// want returns eventlogtest.Records(1, n) with their chain hashes.
func want(n int) []eventlog.Record {
	recs := eventlogtest.Records(1, n)
	eventlogtest.Chain(eventlog.Hash{}, recs)
	return recs
}

func readAll(t *testing.T, l eventlog.Log) []eventlog.Record {
	t.Helper()
	if l.LastSeq() == 0 {
		return nil
	}
	got, err := l.Read(context.Background(), l.FirstSeq(), int(l.LastSeq()-l.FirstSeq()+1), nil)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}

func checkRecords(t *testing.T, l eventlog.Log, want []eventlog.Record) {
	t.Helper()
	if err := eventlogtest.Equal(readAll(t, l), want); err != nil {
		t.Fatal(err)
	}
	var h eventlog.Hash
	if len(want) > 0 {
		h = want[len(want)-1].Hash
	}
	if got := l.LastHash(); got != h {
		t.Fatalf("LastHash = %x, want %x", got[:8], h[:8])
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, filelog.SubDir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// frames returns the offset of every frame in a segment file, walking the
// length fields as FORMAT.md describes.
func frames(t *testing.T, data []byte) []int64 {
	t.Helper()
	var offs []int64
	for off := int64(segHeaderSize); off+44 <= int64(len(data)); {
		offs = append(offs, off)
		off += frameSize(int(binary.LittleEndian.Uint32(data[off+8:])))
	}
	return offs
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
