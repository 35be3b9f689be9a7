// Package memlog is an in-memory eventlog.Log for tests and tools.
//
// It never fails; "durable" means "held in this process". It passes the
// eventlogtest conformance suite and is the reference for how a Log behaves,
// without any of the file backend's I/O.
//
// Records are stored without pointers: fixed-size entries in one slice and
// their bytes (producer, type, payload) in large append-only chunks, so a
// log of millions of records costs the garbage collector nothing to scan —
// as with the file log, whose records live on disk, a replay's heap is the
// state it builds, not the history.
package memlog

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/nodb-dev/nodb/host/eventlog"
)

// Log is an in-memory eventlog.Log. The zero value is not usable; call New.
type Log struct {
	mu       sync.RWMutex
	recs     []entry  // recs[i] has seq i+1
	chunks   [][]byte // record bytes; a chunk is never written again once full
	lastHash eventlog.Hash
	closed   bool
	notify   chan struct{} // closed and replaced on every append and on Close
}

// entry is a stored record without its bytes: producer, type and payload
// lie one after the other in chunks[chunk] from off.
type entry struct {
	pseq       uint64
	time       int64
	hash       eventlog.Hash
	chunk, off uint32
	prodLen    uint32
	typeLen    uint32
	payloadLen uint32
}

// chunkSize is the size of a byte chunk; larger records get a chunk of
// their own.
const chunkSize = 4 << 20

// store copies b into the chunks and returns where it went.
func (l *Log) store(parts ...[]byte) (chunk, off uint32) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	last := len(l.chunks) - 1
	if last < 0 || cap(l.chunks[last])-len(l.chunks[last]) < n {
		l.chunks = append(l.chunks, make([]byte, 0, max(chunkSize, n)))
		last++
	}
	c := l.chunks[last]
	off = uint32(len(c))
	for _, p := range parts {
		c = append(c, p...)
	}
	l.chunks[last] = c
	return uint32(last), off
}

var _ eventlog.Log = (*Log)(nil)

// New returns an empty in-memory log.
func New() *Log {
	return &Log{notify: make(chan struct{})}
}

// Append implements eventlog.Log. It copies the records, so the caller may
// reuse their payloads afterwards, and fills in each record's Hash.
func (l *Log) Append(ctx context.Context, recs []eventlog.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return eventlog.ErrClosed
	}
	if len(recs) == 0 {
		return nil
	}
	next := uint64(len(l.recs)) + 1
	for i := range recs {
		if s := recs[i].Seq; s != next+uint64(i) || s > eventlog.MaxSeq {
			return fmt.Errorf("memlog: record %d of batch has seq %d, want %d: %w",
				i, s, next+uint64(i), eventlog.ErrOutOfOrder)
		}
	}
	prev := l.lastHash
	for i := range recs {
		r := &recs[i]
		r.Hash = eventlog.ChainHash(prev, r)
		prev = r.Hash
		e := entry{pseq: r.PSeq, time: r.Time, hash: r.Hash,
			prodLen: uint32(len(r.Producer)), typeLen: uint32(len(r.Type)), payloadLen: uint32(len(r.Payload))}
		e.chunk, e.off = l.store(unsafe.Slice(unsafe.StringData(r.Producer), len(r.Producer)),
			unsafe.Slice(unsafe.StringData(r.Type), len(r.Type)), r.Payload)
		l.recs = append(l.recs, e)
	}
	l.lastHash = prev
	close(l.notify)
	l.notify = make(chan struct{})
	return nil
}

// Read implements eventlog.Log.
func (l *Log) Read(ctx context.Context, from uint64, max int, buf []eventlog.Record) ([]eventlog.Record, error) {
	buf = buf[:0]
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return buf, eventlog.ErrClosed
	}
	if from == 0 {
		return buf, fmt.Errorf("memlog: read from seq 0: %w", eventlog.ErrNotFound)
	}
	last := uint64(len(l.recs))
	if from > last || max <= 0 {
		return buf, nil
	}
	end := last
	if uint64(max) < end-from+1 {
		end = from + uint64(max) - 1
	}
	es := l.recs[from-1 : end]
	// Producer and type alias the chunks, which never change; the payloads
	// are the caller's to keep or change, so they are copied, into one
	// allocation for the whole read.
	size := 0
	for i := range es {
		size += int(es[i].payloadLen)
	}
	payloads := make([]byte, 0, size)
	for i := range es {
		e := &es[i]
		b := l.chunks[e.chunk][e.off:]
		pl := b[e.prodLen+e.typeLen : e.prodLen+e.typeLen+e.payloadLen]
		var payload []byte
		if len(pl) > 0 {
			start := len(payloads)
			payloads = append(payloads, pl...)
			payload = payloads[start:len(payloads):len(payloads)]
		}
		buf = append(buf, eventlog.Record{
			Seq:      from + uint64(i),
			Producer: unsafe.String(unsafe.SliceData(b), e.prodLen),
			PSeq:     e.pseq,
			Time:     e.time,
			Type:     unsafe.String(unsafe.SliceData(b[e.prodLen:]), e.typeLen),
			Payload:  payload,
			Hash:     e.hash,
		})
	}
	return buf, nil
}

// FirstSeq implements eventlog.Log.
func (l *Log) FirstSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.recs) == 0 {
		return 0
	}
	return 1
}

// LastSeq implements eventlog.Log.
func (l *Log) LastSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return uint64(len(l.recs))
}

// LastHash implements eventlog.Log.
func (l *Log) LastHash() eventlog.Hash {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lastHash
}

// Wait implements eventlog.Log.
func (l *Log) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		l.mu.RLock()
		last, closed, ch := uint64(len(l.recs)), l.closed, l.notify
		l.mu.RUnlock()
		if closed {
			return last, eventlog.ErrClosed
		}
		if last > after {
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

// Close implements eventlog.Log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return eventlog.ErrClosed
	}
	l.closed = true
	close(l.notify)
	return nil
}
