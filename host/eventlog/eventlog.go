// Package eventlog defines the contract of nodb's append-only event log: the
// accepted history that every view is built from.
//
// A Log stores Records in sequence order. Sequence numbers start at 1 and are
// contiguous: the chronicler assigns them and the log refuses anything else.
// Every record commits to the hash of the record before it (a hash chain), so
// an edited, dropped or reordered record is detected by Verify.
//
// Implementations: filelog (the embedded default, segment files on a local
// disk) and memlog (in memory, for tests and tools). Every implementation must
// pass the conformance suite in package eventlogtest.
package eventlog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// MaxSeq is the largest sequence number a log may hold. Sequences stay below
// 2^53 so that JavaScript clients can hold them in a Number without loss.
const MaxSeq = 1<<53 - 1

// HashSize is the size in bytes of a record's chain hash (SHA-256).
const HashSize = sha256.Size

// Hash is a record's chain hash.
type Hash [HashSize]byte

// Record is one accepted event as the log stores it.
type Record struct {
	// Seq is the global sequence number, assigned by the chronicler: the
	// first record of a log has Seq 1, each next record Seq+1.
	Seq uint64
	// Producer names who sent the event; (Producer, PSeq) is unique in a log.
	Producer string
	// PSeq is the producer's own sequence number for the event, starting at 1.
	PSeq uint64
	// Time is when the chronicler accepted the event, in Unix nanoseconds.
	// Reducers see it as their clock, so it is part of the history.
	Time int64
	// Type is the event type, for example "todo/add". Valid UTF-8, not empty.
	Type string
	// Payload is the event body as JSON text (RFC 8259).
	Payload []byte
	// Hash is the record's chain hash, ChainHash(previous record's Hash, r).
	// The log fills it in on Append; callers leave it zero.
	Hash Hash
}

// ChainHash computes the hash that record r commits to, given the hash of the
// record before it (the zero Hash for the first record of a log). It covers
// every field but Hash itself, in a fixed binary layout, so the result does not
// depend on the backend that stores the record:
//
//	SHA-256( prev[32] | seq u64 | pseq u64 | time i64 |
//	         len(producer) u32 | producer | len(type) u32 | type |
//	         len(payload) u32 | payload )      (all integers big-endian)
func ChainHash(prev Hash, r *Record) Hash {
	h := sha256.New()
	var b [8 + 8 + 8 + 4]byte
	h.Write(prev[:])
	binary.BigEndian.PutUint64(b[0:], r.Seq)
	binary.BigEndian.PutUint64(b[8:], r.PSeq)
	binary.BigEndian.PutUint64(b[16:], uint64(r.Time))
	binary.BigEndian.PutUint32(b[24:], uint32(len(r.Producer)))
	h.Write(b[:])
	h.Write([]byte(r.Producer))
	binary.BigEndian.PutUint32(b[0:], uint32(len(r.Type)))
	h.Write(b[:4])
	h.Write([]byte(r.Type))
	binary.BigEndian.PutUint32(b[0:], uint32(len(r.Payload)))
	h.Write(b[:4])
	h.Write(r.Payload)
	var out Hash
	h.Sum(out[:0])
	return out
}

// Errors shared by every implementation. Backends wrap them with detail
// (file, offset, seq) using %w, so callers test with errors.Is.
var (
	// ErrClosed is returned by any call on a closed log.
	ErrClosed = errors.New("eventlog: log is closed")
	// ErrOutOfOrder is returned by Append when the batch does not continue
	// the log at LastSeq()+1 with contiguous sequence numbers.
	ErrOutOfOrder = errors.New("eventlog: records out of order")
	// ErrFailed is returned by Append (and every later write) after a write
	// or sync error. A failed log never acknowledges again: the process must
	// be restarted so recovery can establish what is durable.
	ErrFailed = errors.New("eventlog: log failed after a write or sync error; restart to recover")
	// ErrCorrupt is returned when stored records fail their checksum or hash
	// chain anywhere but a torn tail.
	ErrCorrupt = errors.New("eventlog: corrupt record")
	// ErrNotFound is returned by Read for a sequence the log does not hold.
	ErrNotFound = errors.New("eventlog: sequence not in log")
)

// Log is an append-only, durable, hash-chained sequence of Records.
//
// Append is called by one goroutine at a time (the chronicler's writer); Read,
// FirstSeq, LastSeq, LastHash and Wait may be called concurrently with it and
// with each other.
type Log interface {
	// Append stores recs durably and fills in each record's Hash. The batch
	// must continue the log: recs[0].Seq == LastSeq()+1 and contiguous after
	// that, or ErrOutOfOrder. It returns only after the records are on stable
	// storage (fdatasync or the backend's equivalent). On any write or sync
	// error the log fails permanently: this and every later Append returns an
	// error wrapping ErrFailed, and records of the failed batch must be
	// treated as not acknowledged. An empty batch is a no-op.
	Append(ctx context.Context, recs []Record) error

	// Read returns up to max records starting at sequence from, in order,
	// appending them to buf[:0] (buf may be nil). It returns fewer than max
	// only when it reaches the end of the log; from > LastSeq() gives an empty
	// result and no error; from < FirstSeq() gives ErrNotFound. Returned
	// records do not alias the log's internal buffers and may be kept.
	Read(ctx context.Context, from uint64, max int, buf []Record) ([]Record, error)

	// FirstSeq is the sequence of the oldest record held (1 for a log that
	// was never trimmed), or 0 when the log is empty.
	FirstSeq() uint64

	// LastSeq is the sequence of the newest durable record, 0 when empty.
	LastSeq() uint64

	// LastHash is the Hash of the record at LastSeq (zero when empty).
	LastHash() Hash

	// Wait blocks until LastSeq() > after, the context ends, or the log is
	// closed, and returns the LastSeq it observed.
	Wait(ctx context.Context, after uint64) (uint64, error)

	// Close releases the log. Later calls return ErrClosed.
	Close() error
}
