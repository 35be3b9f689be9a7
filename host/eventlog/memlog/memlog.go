// Package memlog is an in-memory eventlog.Log for tests and tools.
//
// It keeps every record in a slice and never fails; "durable" means "held in
// this process". It passes the eventlogtest conformance suite and is the
// reference for how a Log behaves, without any of the file backend's I/O.
package memlog

import (
	"context"
	"fmt"
	"sync"

	"github.com/nodb-dev/nodb/host/eventlog"
)

// Log is an in-memory eventlog.Log. The zero value is not usable; call New.
type Log struct {
	mu       sync.RWMutex
	recs     []eventlog.Record // recs[i].Seq == i+1
	lastHash eventlog.Hash
	closed   bool
	notify   chan struct{} // closed and replaced on every append and on Close
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
		c := *r
		c.Payload = append([]byte(nil), r.Payload...)
		l.recs = append(l.recs, c)
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
	for _, r := range l.recs[from-1 : end] {
		r.Payload = append([]byte(nil), r.Payload...)
		buf = append(buf, r)
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
