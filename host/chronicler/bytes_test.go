package chronicler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
)

// heldLog holds each Append, as a slow disk does, until it is given a token
// or open is closed, and records the events and bytes of each batch.
type heldLog struct {
	eventlog.Log
	entered chan struct{} // gets a value (if there is room) at each Append
	tokens  chan struct{} // each lets one Append through
	open    chan struct{} // closed to let every Append through
	delay   time.Duration
	opened  sync.Once

	mu      sync.Mutex
	batches []batchStat
}

type batchStat struct{ events, bytes int }

// newHeld returns a Chronicler with cfg on a heldLog over l. At the end of
// the test the log is opened, then the Chronicler closed.
func newHeld(t *testing.T, l eventlog.Log, cfg Config) (*Chronicler, *heldLog) {
	t.Helper()
	h := &heldLog{Log: l, entered: make(chan struct{}, 1), tokens: make(chan struct{}), open: make(chan struct{})}
	c, err := New(context.Background(), h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Cleanup(h.openAll) // first
	return c, h
}

// openAll lets every Append through from now on.
func (h *heldLog) openAll() { h.opened.Do(func() { close(h.open) }) }

func (h *heldLog) Append(ctx context.Context, recs []eventlog.Record) error {
	b := batchStat{events: len(recs)}
	for i := range recs {
		b.bytes += len(recs[i].Producer) + len(recs[i].Type) + len(recs[i].Payload)
	}
	h.mu.Lock()
	h.batches = append(h.batches, b)
	h.mu.Unlock()
	select {
	case h.entered <- struct{}{}:
	default:
	}
	select {
	case <-h.tokens:
	case <-h.open:
	}
	time.Sleep(h.delay)
	return h.Log.Append(ctx, recs)
}

func (h *heldLog) stats() []batchStat {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]batchStat(nil), h.batches...)
}

// openFilelog opens a real file log in a temporary directory.
func openFilelog(t *testing.T) *filelog.Log {
	t.Helper()
	l, err := filelog.Open(filelog.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// sized returns an event of producer p whose Size is exactly n bytes.
func sized(p string, pseq uint64, n int) wire.Event {
	e := wire.Event{Producer: p, PSeq: pseq, Type: "t"}
	e.Payload = []byte(`"` + strings.Repeat("x", n-len(p)-len(e.Type)-2) + `"`)
	if Size(&e) != n {
		panic("sized")
	}
	return e
}

// outcomes collects the results of submitted requests by producer and pseq.
type outcomes struct {
	mu  sync.Mutex
	res map[string]Result
	wg  sync.WaitGroup
}

func newOutcomes() *outcomes { return &outcomes{res: map[string]Result{}} }

// submit calls c.Submit(ctx, e) in a goroutine and returns a channel closed
// when Submit returns.
func (o *outcomes) submit(ctx context.Context, c *Chronicler, e wire.Event) <-chan struct{} {
	o.wg.Add(1)
	r := &Request{Event: e, Done: func(r *Request, res Result) {
		o.mu.Lock()
		o.res[fmt.Sprint(r.Event.Producer, "/", r.Event.PSeq)] = res
		o.mu.Unlock()
		o.wg.Done()
	}}
	returned := make(chan struct{})
	go func() { c.Submit(ctx, r); close(returned) }()
	return returned
}

func (o *outcomes) get(p string, pseq uint64) (Result, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.res[fmt.Sprint(p, "/", pseq)]
	return r, ok
}

// returns reports whether ch is closed within d.
func returns(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// waitBlocked waits until n Submits are blocked waiting for room.
func waitBlocked(t *testing.T, c *Chronicler, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		k := len(c.waiters)
		c.mu.Unlock()
		if k == n {
			return
		}
	}
	t.Fatalf("%d Submits never blocked", n)
}

// TestQueueBytesBlockSubmit: while the disk is slow, Submit queues events
// only up to Config.MaxQueueBytes and then blocks (until its ctx ends, when
// the event is refused as unavailable); once the disk moves on, every
// queued and blocked event is acked in order and is in the log.
func TestQueueBytesBlockSubmit(t *testing.T) {
	const budget, size = 1000, 100
	ctx := context.Background()
	fl := openFilelog(t)
	c, h := newHeld(t, fl, Config{MaxQueueBytes: budget})
	o := newOutcomes()

	// pseq 1 is taken by the writer, which is then held in Append; it no
	// longer counts against the queue.
	if !returns(o.submit(ctx, c, sized("a", 1, size)), 5*time.Second) {
		t.Fatal("the first Submit blocked")
	}
	<-h.entered
	// pseq 2..11 fill the queue to its budget, without blocking.
	for i := uint64(2); i <= 1+budget/size; i++ {
		if !returns(o.submit(ctx, c, sized("a", i, size)), 5*time.Second) {
			t.Fatalf("Submit of pseq %d blocked with %d bytes queued, within the budget of %d", i, (i-2)*size, budget)
		}
	}
	// The next one would exceed it: it blocks, and gives up when its ctx
	// ends.
	next := uint64(2 + budget/size)
	cctx, cancel := context.WithCancel(ctx)
	ret := o.submit(cctx, c, sized("a", next, size))
	if returns(ret, 100*time.Millisecond) {
		t.Fatalf("Submit of pseq %d returned with the queue holding %d bytes, its budget", next, budget)
	}
	cancel()
	if !returns(ret, 5*time.Second) {
		t.Fatal("Submit did not return when its ctx ended")
	}
	if res, ok := o.get("a", next); !ok || res.Err == nil || res.Err.Code != wire.CodeUnavailable || !strings.Contains(res.Err.Message, "gave up waiting") {
		t.Fatalf("outcome of the cancelled Submit: %+v (reported %v), want unavailable", res, ok)
	}
	// Sent again, it waits for room, and gets it once the log moves.
	ret = o.submit(ctx, c, sized("a", next, size))
	if returns(ret, 50*time.Millisecond) {
		t.Fatal("the re-sent Submit did not block")
	}
	h.openAll()
	if !returns(ret, 5*time.Second) {
		t.Fatal("the blocked Submit never got in after the log moved on")
	}
	o.wg.Wait()
	for i := uint64(1); i <= next; i++ {
		res, _ := o.get("a", i)
		if res.Err != nil || res.Ack.Seq != i || res.Ack.Duplicate {
			t.Fatalf("pseq %d: %+v, want ack seq %d", i, res, i)
		}
	}
	recs, err := fl.Read(ctx, 1, 100, nil)
	if err != nil || len(recs) != int(next) {
		t.Fatalf("log holds %d records (%v), want %d", len(recs), err, next)
	}
	for i, r := range recs {
		if want := sized("a", uint64(i+1), size); r.PSeq != want.PSeq || string(r.Payload) != string(want.Payload) {
			t.Fatalf("record %d: pseq %d payload %.20q, want pseq %d", i, r.PSeq, r.Payload, want.PSeq)
		}
	}
}

// TestEventOverQueueBytesGoesAlone: an event larger than MaxQueueBytes is
// never refused: it waits for an empty queue, is queued alone, and what
// comes after it waits for it to leave the queue.
func TestEventOverQueueBytesGoesAlone(t *testing.T) {
	const budget = 1000
	ctx := context.Background()
	c, h := newHeld(t, openFilelog(t), Config{MaxQueueBytes: budget})
	o := newOutcomes()
	o.submit(ctx, c, sized("a", 1, 100))
	<-h.entered // pseq 1 is being written
	if !returns(o.submit(ctx, c, sized("a", 2, 100)), 5*time.Second) {
		t.Fatal("a small Submit blocked on an empty queue")
	}
	// The big one waits while the queue holds anything at all.
	big := o.submit(ctx, c, sized("b", 1, 5*budget))
	if returns(big, 100*time.Millisecond) {
		t.Fatal("an event over the budget was queued beside another")
	}
	// Once pseq 1 is written, the writer takes pseq 2 off the queue and
	// the big one gets in, while pseq 2 is being written.
	h.tokens <- struct{}{}
	if !returns(big, 5*time.Second) {
		t.Fatal("an event over the budget was not queued once the queue was empty")
	}
	// Nothing joins it in the queue.
	after := o.submit(ctx, c, sized("a", 3, 100))
	if returns(after, 100*time.Millisecond) {
		t.Fatal("a Submit was queued beside an event over the budget")
	}
	h.openAll()
	if !returns(after, 5*time.Second) {
		t.Fatal("Submit still blocked after the big event left the queue")
	}
	o.wg.Wait()
	for _, k := range []struct {
		p    string
		pseq uint64
		seq  uint64
	}{{"a", 1, 1}, {"a", 2, 2}, {"b", 1, 3}, {"a", 3, 4}} {
		if res, _ := o.get(k.p, k.pseq); res.Err != nil || res.Ack.Seq != k.seq {
			t.Fatalf("%s/%d: %+v, want ack seq %d", k.p, k.pseq, res, k.seq)
		}
	}
	if st := h.stats(); len(st) != 4 || st[2] != (batchStat{1, 5 * budget}) {
		t.Fatalf("batches %+v, want 4 of one event each", st)
	}
}

// TestSmallSubmitWaitsBehindBigOne: blocked Submits get in in the order they
// came, so a large event is not starved by a stream of small ones that would
// each fit before it.
func TestSmallSubmitWaitsBehindBigOne(t *testing.T) {
	const budget = 1000
	ctx := context.Background()
	c, h := newHeld(t, memlog.New(), Config{MaxQueueBytes: budget})
	o := newOutcomes()
	o.submit(ctx, c, sized("a", 1, 100))
	<-h.entered
	for i := uint64(2); i <= 10; i++ { // 900 of 1000 bytes queued
		<-o.submit(ctx, c, sized("a", i, 100))
	}
	big := o.submit(ctx, c, sized("b", 1, 900)) // over the budget by 800
	waitBlocked(t, c, 1)
	small := o.submit(ctx, c, sized("c", 1, 50)) // would fit, but comes second
	if returns(small, 100*time.Millisecond) {
		t.Fatal("a small Submit went ahead of a big one blocked before it")
	}
	waitBlocked(t, c, 2)
	h.openAll()
	<-big
	<-small
	o.wg.Wait()
	b, _ := o.get("b", 1)
	s, _ := o.get("c", 1)
	if b.Err != nil || s.Err != nil || b.Ack.Seq > s.Ack.Seq {
		t.Fatalf("big: %+v, small: %+v; want both acked, big first", b, s)
	}
}

// TestBatchBytesBound: one append never carries more than MaxBatchBytes,
// except a single event larger than that; and batches are cut by bytes only
// when they must be (each is as full as the next event allows).
func TestBatchBytesBound(t *testing.T) {
	const maxBatch = 1000
	ctx := context.Background()
	c, h := newHeld(t, openFilelog(t), Config{MaxBatchBytes: maxBatch})
	o := newOutcomes()
	o.submit(ctx, c, sized("a", 1, 100))
	<-h.entered // pseq 1 alone in the first batch; queue the rest behind it
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{100}
	for i := uint64(2); i <= 300; i++ {
		n := 10 + rng.IntN(400)
		if i%50 == 0 {
			n = maxBatch + rng.IntN(2000) // over the bound: a batch of its own
		}
		sizes = append(sizes, n)
		<-o.submit(ctx, c, sized("a", i, n))
	}
	h.openAll()
	o.wg.Wait()
	if c.Head() != 300 {
		t.Fatalf("head %d, want 300", c.Head())
	}
	st := h.stats()
	k := 0 // index in sizes of the first event of batch i
	for i, b := range st {
		if b.bytes > maxBatch && b.events != 1 {
			t.Fatalf("batch %d: %d events of %d bytes, over MaxBatchBytes %d", i, b.events, b.bytes, maxBatch)
		}
		k += b.events
		if i > 0 && k < len(sizes) && b.bytes+sizes[k] <= maxBatch {
			t.Fatalf("batch %d: %d bytes, cut although the next event (%d bytes) fit", i, b.bytes, sizes[k])
		}
	}
	if len(st) >= 300/2 {
		t.Fatalf("%d batches for 300 events: they are not being shared", len(st))
	}
	t.Logf("300 events in %d batches", len(st))
}

// TestByteBoundsHammer: many producers with events of mixed sizes, tight
// byte bounds, a slow log and publishes that give up waiting and are sent
// again: every event is acked exactly once and in its producer's order, no
// batch breaks MaxBatchBytes, and nothing stays counted in the queue.
func TestByteBoundsHammer(t *testing.T) {
	const producers, each, maxQueue, maxBatch = 16, 100, 4000, 2000
	ctx := context.Background()
	c, h := newHeld(t, memlog.New(), Config{MaxQueueBytes: maxQueue, MaxBatchBytes: maxBatch, QueueLen: 64})
	h.delay = 200 * time.Microsecond
	h.openAll()
	var gaveUp atomic.Int64
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			name := fmt.Sprint("p", p)
			var last uint64
			for i := uint64(1); i <= each; i++ {
				n := 10 + rng.IntN(600)
				if rng.IntN(40) == 0 {
					n = maxQueue + rng.IntN(maxQueue) // over both bounds
				}
				e := sized(name, i, n)
				for {
					pctx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
					a, err := c.Publish(pctx, e)
					cancel()
					var we *wire.Error
					if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &we) && we.Code == wire.CodeUnavailable {
						gaveUp.Add(1)
						continue // send it again, as a client does
					}
					if err != nil {
						t.Errorf("%s/%d: %v", name, i, err)
						return
					}
					if a.Seq <= last {
						t.Errorf("%s/%d: seq %d after seq %d", name, i, a.Seq, last)
						return
					}
					last = a.Seq
					break
				}
			}
		}()
	}
	wg.Wait()
	c.Close()
	if c.Head() != producers*each {
		t.Fatalf("head %d, want %d", c.Head(), producers*each)
	}
	for i, b := range h.stats() {
		if b.bytes > maxBatch && b.events != 1 {
			t.Fatalf("batch %d: %d events of %d bytes, over MaxBatchBytes %d", i, b.events, b.bytes, maxBatch)
		}
	}
	c.mu.Lock()
	queued, waiting := c.queued, len(c.waiters)
	c.mu.Unlock()
	if queued != 0 || waiting != 0 {
		t.Fatalf("after the run %d bytes are still counted as queued and %d Submits as waiting", queued, waiting)
	}
	t.Logf("%d events in %d batches; %d publishes gave up and were sent again", producers*each, len(h.stats()), gaveUp.Load())
}
