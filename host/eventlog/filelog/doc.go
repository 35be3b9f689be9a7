// Package filelog is nodb's embedded event log: an eventlog.Log kept in
// segment files on a local disk.
//
// The log lives in DATA/log (Config.Dir/SubDir) as a run of segment files
// named by the sequence of their first record, 00000000000000000001.seg and
// so on. A segment starts with a 64-byte header (magic, format version, first
// seq, the hash of the record before it) and then holds record frames. Each
// frame carries its own version, a length bounded and protected by a header
// CRC32-C before it is trusted, the record's fields, its chain hash
// (eventlog.ChainHash) and a CRC32-C of the whole frame. FORMAT.md is the
// byte-level specification, with the recovery rules and what is assumed of
// the disk.
//
// # Writing
//
// Append encodes the whole batch into one reused buffer, writes it with one
// write and makes it durable with one fdatasync; only then does it return,
// and only then can readers see the batch. Each frame records how many
// frames follow it in the same batch, so recovery knows where batches end.
// A write or sync error fails the log for good (eventlog.ErrFailed, Failed):
// after a failed fsync the kernel may have dropped the dirty pages, so
// retrying could acknowledge data that is not on disk. Restarting runs
// recovery, which establishes what is.
//
// # Recovery
//
// Open reads every segment, checks every CRC and recomputes the hash chain.
// The bytes after the last complete batch of the last segment are the tail:
// if every valid frame in them belongs to one batch, they are what a crash
// in the middle of an Append leaves, and they are cut, after being copied to
// DATA/log/torn/. Anything else (a bad frame followed by a frame of a later
// batch, damage in a sealed segment, a broken chain) is corruption, and Open
// refuses with a *CorruptError naming the file, offset and seq. Verify runs
// the same checks read-only, for "nodb verify".
//
// Recomputing the chain is about half of Open's time, and it runs on all
// cores: each frame stores its own hash, so every link can be checked apart
// from the others, and the chain holds if every link does. The links of
// each window of a file are checked in parallel before the scan moves on;
// errors and OnRecord calls are the ones an in-order check would give
// (1M events: ~400 ms → ~270 ms on 2 cores, BenchmarkOpen).
//
// # Files
//
// New files (segments, saved tails) are written under a temporary name,
// synced, renamed into place, and the directory synced. All I/O goes through
// the FS interface so that tests can inject faults.
package filelog
