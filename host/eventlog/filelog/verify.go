package filelog

import (
	"github.com/nodb-dev/nodb/host/eventlog"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	// Dir is the directory holding the segment files.
	Dir string
	// Segments is the number of segment files.
	Segments int
	// Records is the number of records in complete batches.
	Records uint64
	// FirstSeq and LastSeq bound those records (0 when there are none).
	FirstSeq, LastSeq uint64
	// LastHash is the chain hash of LastSeq: a digest of the whole history.
	LastHash eventlog.Hash
	// Bytes is the total size of the segment files.
	Bytes int64
	// Torn describes a torn tail that the next Open will cut, or nil.
	// It is not an error: it is what a crash during an Append leaves.
	Torn *TornTail
	// LeftoverTemps lists temporary files the next Open will delete.
	LeftoverTemps []string
}

// Verify checks the log in the data directory dir (the Config.Dir of Open)
// without changing anything: every segment header, every frame's CRCs, the
// sequence numbers and batch structure, and the whole hash chain, which it
// recomputes. It returns a *CorruptError (wrapping eventlog.ErrCorrupt)
// naming the file, offset and seq of the first damage that is not a torn
// tail; a torn tail is reported in VerifyReport.Torn.
//
// If fn is not nil, Verify calls it with every record of a complete batch,
// in order, once the record's checks passed; the record is fn's to keep.
// This makes Verify also the read-only iterator for tools such as
// "nodb log cat". An error from fn stops Verify and is returned as is.
//
// Verify takes no lock: run against a log that is being appended to, it may
// see the last batch torn.
func Verify(dir string, fn func(eventlog.Record) error) (VerifyReport, error) {
	return verify(OSFS{}, Config{Dir: dir}.withDefaults(), fn)
}

func verify(fsys FS, cfg Config, fn func(eventlog.Record) error) (VerifyReport, error) {
	rep := VerifyReport{Dir: cfg.logDir()}
	res, err := scanLog(fsys, rep.Dir, maxDataLimit, fn)
	if err != nil {
		return rep, err
	}
	rep.Segments = len(res.segs)
	rep.Torn = res.torn
	rep.LeftoverTemps = res.temps
	for _, s := range res.segs {
		rep.Bytes += s.fileSize
	}
	if len(res.segs) > 0 {
		first, last := res.segs[0], res.segs[len(res.segs)-1]
		rep.LastSeq, rep.LastHash = last.lastSeq, last.lastHash
		if last.lastSeq >= first.hdr.firstSeq {
			rep.FirstSeq = first.hdr.firstSeq
			rep.Records = last.lastSeq - first.hdr.firstSeq + 1
		}
	}
	return rep, nil
}
