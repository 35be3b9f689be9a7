package view

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/host/statetree"
)

// Snapshot files live in SnapshotDir/<view>/<seq:020d>.snap. Layout (all
// integers big-endian):
//
//	offset  size  field
//	0       8     magic "NODBSNAP"
//	8       4     format version (1)
//	12      32    plugin hash (SHA-256 of the reducer's code)
//	44      8     seq: the last event applied to the state
//	52      32    root hash of the state (statetree Merkle hash)
//	84      8     body length n
//	92      4     CRC32-C of bytes 0..92 and of the body
//	96      n     body: the state as deterministic CBOR (statetree.EncodeCBOR)
//
// A snapshot is written to a temp file, synced, renamed into place, and the
// directory synced. On load, a snapshot whose CRC, body or root hash does not
// check out is skipped with a warning and the next older one is tried.
const (
	snapMagic      = "NODBSNAP"
	snapVersion    = 1
	snapHeaderSize = 96
	snapSuffix     = ".snap"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapshot struct {
	seq  uint64
	root statetree.Value
}

func snapDir(dir, view string) string { return filepath.Join(dir, view) }

func writeSnapshot(dir, view, pluginHash string, seq uint64, root statetree.Value, keep int) error {
	d := snapDir(dir, view)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("view: snapshot dir: %w", err)
	}
	ph, err := hex.DecodeString(pluginHash)
	if err != nil || len(ph) != 32 {
		sum := sha256Sum([]byte(pluginHash))
		ph = sum[:]
	}
	body := statetree.EncodeCBOR(root)
	hdr := make([]byte, snapHeaderSize)
	copy(hdr, snapMagic)
	binary.BigEndian.PutUint32(hdr[8:], snapVersion)
	copy(hdr[12:44], ph)
	binary.BigEndian.PutUint64(hdr[44:], seq)
	rh := root.Hash()
	copy(hdr[52:84], rh[:])
	binary.BigEndian.PutUint64(hdr[84:], uint64(len(body)))
	crc := crc32.Update(crc32.Checksum(hdr[:92], castagnoli), castagnoli, body)
	binary.BigEndian.PutUint32(hdr[92:], crc)

	final := filepath.Join(d, fmt.Sprintf("%020d%s", seq, snapSuffix))
	tmp, err := os.CreateTemp(d, ".tmp-*")
	if err != nil {
		return fmt.Errorf("view: snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(hdr); err == nil {
		_, err = tmp.Write(body)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("view: writing snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("view: snapshot rename: %w", err)
	}
	if err := syncDir(d); err != nil {
		return err
	}
	// Keep the newest few.
	seqs, _ := listSnapshots(d)
	for i := 0; i+keep < len(seqs); i++ {
		os.Remove(filepath.Join(d, fmt.Sprintf("%020d%s", seqs[i], snapSuffix)))
	}
	return nil
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return fmt.Errorf("view: sync dir: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("view: sync dir %s: %w", d, err)
	}
	return nil
}

// listSnapshots returns the seqs of the snapshot files in d, oldest first.
func listSnapshots(d string) ([]uint64, error) {
	ents, err := os.ReadDir(d)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), snapSuffix)
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// loadSnapshotAtOrBefore returns the newest valid snapshot of view made by
// pluginHash with a seq at most maxSeq, or nil if there is none.
func loadSnapshotAtOrBefore(dir, view, pluginHash string, maxSeq uint64, logger hclog.Logger) (*snapshot, error) {
	d := snapDir(dir, view)
	seqs, err := listSnapshots(d)
	if err != nil {
		return nil, fmt.Errorf("view: listing snapshots: %w", err)
	}
	ph, err := hex.DecodeString(pluginHash)
	if err != nil || len(ph) != 32 {
		sum := sha256Sum([]byte(pluginHash))
		ph = sum[:]
	}
	for i := len(seqs) - 1; i >= 0; i-- {
		if seqs[i] > maxSeq {
			continue
		}
		path := filepath.Join(d, fmt.Sprintf("%020d%s", seqs[i], snapSuffix))
		s, err := readSnapshot(path, ph)
		if err != nil {
			logger.Warn("skipping snapshot", "file", path, "reason", err)
			continue
		}
		if s != nil {
			return s, nil
		}
	}
	return nil, nil
}

// readSnapshot reads one snapshot; it returns nil, nil for a valid snapshot
// made by another plugin.
func readSnapshot(path string, pluginHash []byte) (*snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < snapHeaderSize || string(data[:8]) != snapMagic {
		return nil, errors.New("not a nodb snapshot (bad magic or short header)")
	}
	if v := binary.BigEndian.Uint32(data[8:]); v != snapVersion {
		return nil, fmt.Errorf("snapshot format version %d is not supported", v)
	}
	n := binary.BigEndian.Uint64(data[84:])
	if n != uint64(len(data)-snapHeaderSize) {
		return nil, fmt.Errorf("body is %d bytes, header says %d (truncated write?)", len(data)-snapHeaderSize, n)
	}
	body := data[snapHeaderSize:]
	if crc := crc32.Update(crc32.Checksum(data[:92], castagnoli), castagnoli, body); crc != binary.BigEndian.Uint32(data[92:]) {
		return nil, errors.New("CRC mismatch")
	}
	if !bytes.Equal(data[12:44], pluginHash) {
		return nil, nil
	}
	root, err := statetree.DecodeCBOR(body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if h := root.Hash(); !bytes.Equal(h[:], data[52:84]) {
		return nil, errors.New("root hash of the body does not match the header")
	}
	return &snapshot{seq: binary.BigEndian.Uint64(data[44:]), root: root}, nil
}

// setAsideSnapshotsAhead moves the view's snapshots with a seq past the
// log's head into the "ahead" subdirectory. Such a snapshot was made from
// records the log no longer has (a damaged last batch is cut as torn; see
// filelog/FORMAT.md): once new events take those seqs, loading it would
// give a state the log does not produce. It is kept there, not deleted,
// for inspection.
func setAsideSnapshotsAhead(dir, view string, head uint64, logger hclog.Logger) error {
	d := snapDir(dir, view)
	seqs, err := listSnapshots(d)
	if err != nil {
		return fmt.Errorf("view: listing snapshots: %w", err)
	}
	moved := 0
	for _, seq := range seqs {
		if seq <= head {
			continue
		}
		ahead := filepath.Join(d, "ahead")
		if err := os.MkdirAll(ahead, 0o755); err != nil {
			return fmt.Errorf("view: setting aside snapshot %d, ahead of the log: %w", seq, err)
		}
		name := fmt.Sprintf("%020d%s", seq, snapSuffix)
		to := filepath.Join(ahead, name)
		for k := 2; ; k++ {
			if _, err := os.Stat(to); errors.Is(err, os.ErrNotExist) {
				break
			}
			to = filepath.Join(ahead, fmt.Sprintf("%s.%d", name, k))
		}
		if err := os.Rename(filepath.Join(d, name), to); err != nil {
			return fmt.Errorf("view: setting aside snapshot %d, ahead of the log: %w", seq, err)
		}
		logger.Warn("snapshot is ahead of the log (its last records were cut); set aside", "snapshot_seq", seq, "log_head", head, "moved_to", to)
		moved++
	}
	if moved > 0 {
		return syncDir(d)
	}
	return nil
}

// removeUnfinishedSnapshots deletes the temp files of snapshot writes that a
// crash cut short. Called only when a view starts: the event log's lock
// means no other host writes to this directory.
func removeUnfinishedSnapshots(dir, view string, logger hclog.Logger) {
	tmps, _ := filepath.Glob(filepath.Join(snapDir(dir, view), ".tmp-*"))
	for _, t := range tmps {
		os.Remove(t)
	}
	if len(tmps) > 0 {
		logger.Info("removed unfinished snapshot writes", "files", len(tmps))
	}
}
