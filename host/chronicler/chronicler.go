// Package chronicler is nodb's accepted history: it takes events from
// producers, drops re-sends, assigns each new event the next global sequence
// number, appends batches to the event log and acknowledges an event only
// after the batch holding it is durable.
//
// One writer goroutine does group commit: every request that arrives while
// the previous batch is being written and synced goes into the next batch, so
// many producers share one fsync.
//
// Memory is bounded in bytes as well as in counts: the events waiting for
// the writer hold at most Config.MaxQueueBytes (Submit blocks beyond it) and
// one batch at most Config.MaxBatchBytes, so large events slow producers
// down instead of exhausting memory or making one write enormous.
//
// Dedupe is exact and permanent (Kafka's idempotent-producer rules): each
// producer numbers its events 1, 2, 3, …; a pseq at or below the last one
// accepted is a duplicate and is acked again with the seq it was given; a pseq
// that skips ahead is rejected naming the pseq expected. The dedupe table is
// rebuilt from the log at start, never kept only in memory.
package chronicler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/eventlog"
)

// Errors returned by the chronicler. Rejections are *wire.Error values, so a
// server can send them to the client as they are.
var (
	// ErrClosed is returned for requests after Close.
	ErrClosed = &wire.Error{Code: wire.CodeUnavailable, Message: "the host is shutting down; retry with the same producer and pseq"}
)

// Config tunes a Chronicler.
type Config struct {
	// MaxBatch bounds the events written by one fsync. Default 4096.
	MaxBatch int
	// MaxBatchBytes bounds the bytes (Size) of the events written by one
	// fsync; a batch holds at least one event, however large. Default
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// QueueLen is the capacity of the request queue in front of the writer.
	// Default 65536.
	QueueLen int
	// MaxQueueBytes bounds the bytes (Size) of the events queued in front of
	// the writer: Submit blocks while one more would exceed it. An event
	// larger than MaxQueueBytes is queued alone, once the queue is empty.
	// The batch being written is not counted, so the events accepted but
	// not yet durable hold at most MaxQueueBytes + MaxBatchBytes (a single
	// event larger than a bound takes that bound's place). Default
	// DefaultMaxQueueBytes.
	MaxQueueBytes int
	// Logger receives the chronicler's logs. Default: a null logger.
	Logger hclog.Logger
	// Metrics, when set, is updated as events are processed.
	Metrics *Metrics
	// Now returns the time stamped on accepted events. Default time.Now.
	Now func() time.Time
	// Rebuilt, if set, is the dedupe table built while the log was opened
	// (see Rebuilder); nil means New reads the log to build it.
	Rebuilt *Rebuilder
	// MaxRecordSize, if not 0, bounds len(Producer)+len(Type)+len(Payload)
	// of a new event: a larger one is refused with CodeTooLarge and the
	// others of its batch go on. Set it to the log's own limit (filelog's
	// Config.MaxRecordSize), which would otherwise fail the whole batch and,
	// like any append error, stop all acknowledgements until a restart.
	MaxRecordSize int
}

// Defaults of the byte bounds in Config.
const (
	// DefaultMaxQueueBytes is the default Config.MaxQueueBytes: 256 MiB,
	// enough for 65536 queued events of 4 KiB, so small events meet the
	// count bound (QueueLen) first and never see it; large ones (up to
	// nodb serve --max-frame each) wait for the disk instead of filling
	// memory.
	DefaultMaxQueueBytes = 256 << 20
	// DefaultMaxBatchBytes is the default Config.MaxBatchBytes: 16 MiB,
	// a quarter of a file log segment (filelog.DefaultSegmentSize). Writing it takes tens of
	// milliseconds, so the fsync it shares is already a small part of the
	// cost and a larger batch would only add latency (and memory: the file
	// log encodes a batch into one buffer before writing it).
	DefaultMaxBatchBytes = 16 << 20
)

// Size is what an event counts against Config.MaxQueueBytes and
// Config.MaxBatchBytes: the bytes it holds and the log stores,
// len(Producer)+len(Type)+len(Payload) (the measure of
// Config.MaxRecordSize too).
func Size(ev *wire.Event) int { return len(ev.Producer) + len(ev.Type) + len(ev.Payload) }

// Result is the outcome of one publish.
type Result struct {
	// Ack is set when Err is nil.
	Ack wire.Ack
	// Err is a *wire.Error: CodePSeqGap, CodeTooLarge (over
	// Config.MaxRecordSize), or CodeUnavailable when storage failed or the
	// chronicler is closing.
	Err *wire.Error
}

// Request is one publish handed to Submit. Done is called exactly once from
// the writer goroutine, after the outcome is final (durable for an ack); it
// must not block.
type Request struct {
	Event wire.Event
	Done  func(*Request, Result)

	// Ctx is free for the submitter's use (for example its reply slot).
	Ctx any

	queued time.Time
	size   int // Size(&Event), counted in Chronicler.queued
}

// waiter is a Submit blocked until its request fits in the queue.
type waiter struct {
	r        *Request
	ready    chan struct{} // closed when r was queued for it
	admitted bool          // guarded by Chronicler.mu
}

// Chronicler is the accepted history's only writer.
type Chronicler struct {
	log     eventlog.Log
	cfg     Config
	logger  hclog.Logger
	in      chan *Request
	stop    chan struct{}
	stopped chan struct{}

	mu        sync.Mutex // guards closed, queued, waiters, and the send side of in
	closed    bool
	queued    int       // bytes (Size) of the requests in in and carry
	waiters   []*waiter // Submits blocked, oldest first: they go in in this order
	failed    atomic.Pointer[wire.Error]
	pmu       sync.RWMutex // guards producers; written only by the writer
	producers map[string]*producer
	nextSeq   uint64
	lastTime  int64

	carry *Request // taken from in but left for the next batch (MaxBatchBytes)
	batch []*Request
	recs  []eventlog.Record
	res   []Result
}

// producer is one producer's dedupe state: seqs[i] is the seq of pseq i+1.
// Producers number their events without gaps, so the table is dense.
type producer struct {
	seqs []uint64
}

func (p *producer) last() uint64 { return uint64(len(p.seqs)) }

// New rebuilds the dedupe table by reading log from its first record, then
// starts the writer. The caller keeps ownership of log and closes it after
// Close returns.
func New(ctx context.Context, log eventlog.Log, cfg Config) (*Chronicler, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 65536
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Chronicler{
		log:       log,
		cfg:       cfg,
		logger:    cfg.Logger,
		in:        make(chan *Request, cfg.QueueLen),
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
		producers: make(map[string]*producer),
	}
	start := time.Now()
	var n int
	var err error
	if rb := cfg.Rebuilt; rb != nil && rb.err == nil && log.FirstSeq() <= 1 && rb.next == log.LastSeq()+1 {
		// The table was built as the log was opened (filelog's OnRecord):
		// no second pass over the history.
		c.producers, c.lastTime, c.nextSeq, n = rb.producers, rb.lastTime, rb.next, int(rb.next-1)
	} else {
		if rb != nil {
			c.logger.Warn("dedupe table built at open does not match the log; reading the log again", "built_to", rb.next-1, "head", log.LastSeq(), "error", rb.err)
		}
		if n, err = c.rebuild(ctx); err != nil {
			return nil, err
		}
	}
	c.logger.Info("dedupe table rebuilt", "events", n, "producers", len(c.producers), "head", c.nextSeq-1, "took", time.Since(start))
	go c.run()
	return c, nil
}

func (c *Chronicler) rebuild(ctx context.Context) (int, error) {
	first, last := c.log.FirstSeq(), c.log.LastSeq()
	c.nextSeq = last + 1
	if last == 0 {
		c.nextSeq = 1
		return 0, nil
	}
	if first != 1 {
		return 0, fmt.Errorf("chronicler: log starts at seq %d, not 1; the dedupe table needs the whole history", first)
	}
	var buf []eventlog.Record
	n := 0
	for from := first; from <= last; {
		var err error
		buf, err = c.log.Read(ctx, from, 4096, buf)
		if err != nil {
			return n, fmt.Errorf("chronicler: rebuilding dedupe table at seq %d: %w", from, err)
		}
		if len(buf) == 0 {
			return n, fmt.Errorf("chronicler: log ended at seq %d before its last seq %d", from, last)
		}
		for i := range buf {
			r := &buf[i]
			p := c.producer(r.Producer)
			if r.PSeq != p.last()+1 {
				return n, fmt.Errorf("chronicler: log seq %d has producer %q pseq %d after pseq %d; the log breaks the producer rules", r.Seq, r.Producer, r.PSeq, p.last())
			}
			p.seqs = append(p.seqs, r.Seq)
			if r.Time > c.lastTime {
				c.lastTime = r.Time
			}
			n++
		}
		from = buf[len(buf)-1].Seq + 1
	}
	return n, nil
}

// A Rebuilder builds the dedupe table from the records of a log, one at a
// time, as the log's own recovery scan reads them (filelog.Config.OnRecord),
// so that New need not read the whole history a second time. Give it to New
// in Config.Rebuilt; New uses it only if it saw exactly the log's records
// 1..LastSeq, and otherwise reads the log itself.
type Rebuilder struct {
	producers map[string]*producer
	next      uint64 // the seq the next record must have
	lastTime  int64
	err       error
}

// NewRebuilder returns an empty Rebuilder.
func NewRebuilder() *Rebuilder {
	return &Rebuilder{producers: map[string]*producer{}, next: 1}
}

// Add records one record; it fails (and the Rebuilder is unusable) if the
// records break the producer rules or do not come in seq order from 1.
func (b *Rebuilder) Add(seq, pseq uint64, prod []byte, time int64) error {
	if b.err != nil {
		return b.err
	}
	if seq != b.next {
		b.err = fmt.Errorf("chronicler: record seq %d where seq %d was expected", seq, b.next)
		return b.err
	}
	p := b.producers[string(prod)] // no allocation for the lookup
	if p == nil {
		p = &producer{}
		b.producers[string(prod)] = p
	}
	if pseq != p.last()+1 {
		b.err = fmt.Errorf("chronicler: log seq %d has producer %q pseq %d after pseq %d; the log breaks the producer rules", seq, prod, pseq, p.last())
		return b.err
	}
	p.seqs = append(p.seqs, seq)
	b.lastTime = max(b.lastTime, time)
	b.next++
	return nil
}

func (c *Chronicler) producer(name string) *producer {
	p := c.producers[name]
	if p == nil {
		p = &producer{}
		c.producers[name] = p
	}
	return p
}

// Head returns the seq of the newest durable event (0 when empty).
func (c *Chronicler) Head() uint64 { return c.log.LastSeq() }

// Failed returns the storage error that stopped the chronicler, or nil.
func (c *Chronicler) Failed() error {
	if e := c.failed.Load(); e != nil {
		return e
	}
	return nil
}

// Submit queues r for the writer. It blocks while the queue is full, by
// count (Config.QueueLen) or by bytes (Config.MaxQueueBytes), which is the
// back pressure on producers, until r fits; blocked Submits are queued in
// the order they came. When the chronicler is closed or failed, Done is
// called at once with an unavailable error, and so it is when ctx ends
// before r is queued (once queued, r is decided whatever ctx does).
func (c *Chronicler) Submit(ctx context.Context, r *Request) {
	r.queued = time.Now()
	r.size = Size(&r.Event)
	if e := c.failed.Load(); e != nil {
		r.Done(r, Result{Err: e})
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		r.Done(r, Result{Err: ErrClosed})
		return
	}
	if len(c.waiters) == 0 && c.fits(r.size) {
		select {
		case c.in <- r:
			c.queued += r.size
			c.mu.Unlock()
			return
		default:
		}
	}
	// The queue is full: wait for the writer to make room (admit).
	w := &waiter{r: r, ready: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	var err *wire.Error
	select {
	case <-w.ready:
		return
	case <-ctx.Done():
		err = &wire.Error{Code: wire.CodeUnavailable, Message: "gave up waiting for the write queue: " + ctx.Err().Error()}
	case <-c.stop:
		err = ErrClosed
	}
	c.mu.Lock()
	if w.admitted { // queued after all, while we were woken
		c.mu.Unlock()
		return
	}
	for i, o := range c.waiters {
		if o == w {
			copy(c.waiters[i:], c.waiters[i+1:])
			c.waiters[len(c.waiters)-1] = nil
			c.waiters = c.waiters[:len(c.waiters)-1]
			break
		}
	}
	if !c.closed {
		c.admit() // the requests behind w may fit
	}
	c.mu.Unlock()
	r.Done(r, Result{Err: err})
}

// fits reports whether a request of size bytes may join the queue: the
// queue stays within MaxQueueBytes with it, or it is empty. c.mu is held.
func (c *Chronicler) fits(size int) bool {
	return c.queued == 0 || c.queued+size <= c.cfg.MaxQueueBytes
}

// admit queues the blocked Submits' requests, oldest first, while they fit.
// c.mu is held.
func (c *Chronicler) admit() {
	for len(c.waiters) > 0 {
		w := c.waiters[0]
		if !c.fits(w.r.size) {
			return
		}
		select {
		case c.in <- w.r:
		default:
			return
		}
		c.queued += w.r.size
		w.admitted = true
		close(w.ready)
		c.waiters[0] = nil
		c.waiters = c.waiters[1:]
	}
}

// release is called by the writer when it has taken n bytes of requests off
// the queue for a batch; it lets blocked Submits in.
func (c *Chronicler) release(n int) {
	c.mu.Lock()
	c.queued -= n
	if len(c.waiters) > 0 && !c.closed {
		c.admit()
	}
	c.mu.Unlock()
}

// Publish submits one event and waits for its outcome. The error is a
// *wire.Error (or ctx.Err() if ctx ended first; the event may still be
// accepted, and a retry with the same pseq is then acked as a duplicate).
func (c *Chronicler) Publish(ctx context.Context, ev wire.Event) (wire.Ack, error) {
	ch := make(chan Result, 1)
	c.Submit(ctx, &Request{Event: ev, Done: func(_ *Request, res Result) { ch <- res }})
	select {
	case res := <-ch:
		if res.Err != nil {
			return wire.Ack{}, res.Err
		}
		return res.Ack, nil
	case <-ctx.Done():
		return wire.Ack{}, ctx.Err()
	}
}

// Close stops accepting requests, finishes every request already queued
// (each gets its ack or an error), and stops the writer. It does not close
// the log.
func (c *Chronicler) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.stop)
	}
	c.mu.Unlock()
	<-c.stopped
	return nil
}

func (c *Chronicler) run() {
	defer close(c.stopped)
	for {
		first := c.carry
		if first == nil {
			select {
			case first = <-c.in:
			case <-c.stop:
				// Drain whatever was queued before Close.
				for {
					if first = c.carry; first == nil {
						select {
						case first = <-c.in:
						default:
							return
						}
					}
					c.batch = append(c.batch[:0], first)
					c.fill()
					c.commit()
				}
			}
		}
		c.batch = append(c.batch[:0], first)
		c.fill()
		c.commit()
	}
}

// fill adds every request already waiting to the batch (which holds its
// first), up to MaxBatch requests and MaxBatchBytes; a request that would
// take the batch over MaxBatchBytes is kept in carry to start the next one.
// It then releases the batch's bytes from the queue.
func (c *Chronicler) fill() {
	c.carry = nil
	n := c.batch[0].size
	for len(c.batch) < c.cfg.MaxBatch {
		select {
		case r := <-c.in:
			if n+r.size > c.cfg.MaxBatchBytes {
				c.carry = r
				c.release(n)
				return
			}
			c.batch = append(c.batch, r)
			n += r.size
			continue
		default:
		}
		break
	}
	c.release(n)
}

// commit decides each request of the batch, appends the new events in one
// durable write and then reports every outcome.
func (c *Chronicler) commit() {
	batch := c.batch
	c.recs = c.recs[:0]
	c.res = c.res[:0]
	now := c.cfg.Now().UnixNano()
	if now < c.lastTime {
		now = c.lastTime // the history's clock never runs backwards
	}
	failed := c.failed.Load()
	c.pmu.Lock()
	for _, r := range batch {
		if failed != nil {
			c.res = append(c.res, Result{Err: failed})
			continue
		}
		ev := &r.Event
		p := c.producers[ev.Producer] // created only when an event is accepted
		var last uint64
		if p != nil {
			last = p.last()
		}
		switch {
		case ev.PSeq <= last:
			c.res = append(c.res, Result{Ack: wire.Ack{Seq: p.seqs[ev.PSeq-1], Duplicate: true}})
		case ev.PSeq == last+1:
			if n := r.size; c.cfg.MaxRecordSize > 0 && n > c.cfg.MaxRecordSize {
				c.res = append(c.res, Result{Err: &wire.Error{Code: wire.CodeTooLarge, Message: fmt.Sprintf(
					"the event is %d bytes as stored (producer, type and the payload as JSON), over the limit of %d; send a smaller event", n, c.cfg.MaxRecordSize)}})
				continue
			}
			if c.nextSeq > eventlog.MaxSeq {
				c.res = append(c.res, Result{Err: &wire.Error{Code: wire.CodeUnavailable, Message: "the log is full: sequence numbers reached 2^53-1"}})
				continue
			}
			seq := c.nextSeq
			c.nextSeq++
			if p == nil {
				p = c.producer(ev.Producer)
			}
			p.seqs = append(p.seqs, seq)
			c.recs = append(c.recs, eventlog.Record{
				Seq: seq, Producer: ev.Producer, PSeq: ev.PSeq, Time: now, Type: ev.Type, Payload: ev.Payload,
			})
			c.res = append(c.res, Result{Ack: wire.Ack{Seq: seq}})
		default:
			c.res = append(c.res, Result{Err: &wire.Error{
				Code:         wire.CodePSeqGap,
				Message:      fmt.Sprintf("pseq %d skips ahead: producer %q expects pseq %d next; re-send the events in between first", ev.PSeq, ev.Producer, last+1),
				ExpectedPSeq: last + 1,
			}})
		}
	}
	c.pmu.Unlock()
	c.lastTime = now
	m := c.cfg.Metrics
	if len(c.recs) > 0 {
		start := time.Now()
		err := c.log.Append(context.Background(), c.recs)
		if m != nil {
			m.FsyncSeconds.Observe(time.Since(start).Seconds())
			m.BatchSize.Observe(float64(len(c.recs)))
		}
		if err != nil {
			// Nothing of this batch is acknowledged, and nothing after it
			// ever will be: recovery on restart decides what is durable.
			werr := &wire.Error{Code: wire.CodeUnavailable, Message: "the event log failed to write or sync, so this host stopped accepting events; nothing unacknowledged was kept. An operator must fix the disk and restart nodb; then retry with the same producer and pseq. Cause: " + err.Error()}
			c.failed.Store(werr)
			c.logger.Error("event log failed; acknowledgements stopped until restart", "error", err, "batch", len(c.recs))
			for i := range c.res {
				c.res[i] = Result{Err: werr}
			}
		}
	}
	now2 := time.Now()
	for i, r := range batch {
		res := c.res[i]
		if m != nil {
			switch {
			case res.Err != nil && res.Err.Code == wire.CodePSeqGap:
				m.Rejected.WithLabelValues("pseq_gap").Inc()
			case res.Err != nil && res.Err.Code == wire.CodeTooLarge:
				m.Rejected.WithLabelValues("too_large").Inc()
			case res.Err != nil:
				m.Rejected.WithLabelValues("unavailable").Inc()
			case res.Ack.Duplicate:
				m.Duplicates.Inc()
			default:
				m.Accepted.Inc()
			}
			m.AckSeconds.Observe(now2.Sub(r.queued).Seconds())
		}
		r.Done(r, res)
	}
	for i := range batch {
		batch[i] = nil
	}
	for i := range c.recs {
		c.recs[i] = eventlog.Record{}
	}
}

// ProducerInfo reports a producer's last accepted pseq and the seq it was
// given, for clients resuming a persistent producer id. Only durable events
// count: one whose batch is still being written, or failed to be, is not
// reported. ok is false for a producer with no durable event.
func (c *Chronicler) ProducerInfo(name string) (lastPSeq, lastSeq uint64, ok bool) {
	c.pmu.RLock()
	defer c.pmu.RUnlock()
	p := c.producers[name]
	if p == nil {
		return 0, 0, false
	}
	// The table is updated before the batch is appended; the log's last
	// seq moves only once the batch is synced (and never after a failure).
	head := c.log.LastSeq()
	n := len(p.seqs)
	for n > 0 && p.seqs[n-1] > head {
		n--
	}
	if n == 0 {
		return 0, 0, false
	}
	return uint64(n), p.seqs[n-1], true
}
