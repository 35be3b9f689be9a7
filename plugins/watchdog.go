package plugins

import (
	"sync"
	"sync/atomic"
	"time"
)

// The watchdog enforces per-event time limits without a timer, a context or
// a clock read per event. An Instance publishes, in one atomic word, a
// generation number that it advances at the start and at the end of every
// guest call, with a busy bit. One goroutine per Runtime looks at all
// instances every tick and remembers, per instance, the word it saw and
// when it first saw it: a call still running under the same generation
// more than the timeout after it was first seen has overrun, and the
// watchdog fires its stop function (which sets the guest's stop global, see
// instrument.go). First sight comes at most a tick after the call started,
// so a call is stopped between timeout and timeout + 2 ticks after it
// started, and never before it has run for the timeout. Per event this costs
// two atomic writes to a word the watchdog reads a few times a second. The
// tick is timeout/8, between 1 ms and 100 ms.

var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

// The bits of watched.state below the generation number.
const (
	stateBusy  = 1 // a guest call is running
	stateFired = 2 // the watchdog stopped it
	stateGen   = 4 // one generation
)

type watched struct {
	timeout time.Duration
	stop    func() // called with mu held when the deadline passes

	state atomic.Uint64 // generation*stateGen | stateFired | stateBusy
	gen   uint64        // the generation of the last call; owned by the calling goroutine
	fired bool          // the last call was stopped; owned by the calling goroutine

	// Owned by the watchdog goroutine.
	seen   uint64 // the state seen at seenAt
	seenAt int64  // monoNow() when seen was first seen

	mu sync.Mutex // held by the watchdog while it fires, and by readers of the stop global
}

// begin marks the start of a guest call.
func (w *watched) begin() {
	w.gen++
	w.fired = false
	w.state.Store(w.gen*stateGen | stateBusy)
}

// end marks the end of a guest call and reports whether the watchdog
// stopped it (the result is also kept for timedOut).
func (w *watched) end() bool {
	w.gen++
	if w.state.Swap(w.gen*stateGen)&stateFired != 0 {
		// The watchdog fired: wait for it to finish with the stop global.
		w.mu.Lock()
		w.fired = true
		w.mu.Unlock()
	}
	return w.fired
}

// timedOut reports whether the current or last call was stopped. Call it
// from the goroutine making the calls.
func (w *watched) timedOut() bool {
	return w.fired || w.state.Load()&stateFired != 0
}

// check is the watchdog's look at one instance at time now.
func (w *watched) check(now int64) {
	s := w.state.Load()
	if s&stateBusy == 0 || s&stateFired != 0 {
		w.seen = 0
		return
	}
	if s != w.seen {
		w.seen, w.seenAt = s, now
		return
	}
	if time.Duration(now-w.seenAt) > w.timeout {
		w.fire(s)
	}
}

// fire stops the call whose state was s. The call may have ended since s
// was read: it fires only if the state is still s, so that a stop never
// lands on a later call.
func (w *watched) fire(s uint64) {
	w.mu.Lock()
	if w.state.CompareAndSwap(s, s|stateFired) {
		w.stop()
	}
	w.mu.Unlock()
}

type watchdog struct {
	mu      sync.Mutex
	items   map[*watched]struct{}
	tick    time.Duration
	wake    chan struct{}
	running bool
	stopped bool
}

func newWatchdog() *watchdog {
	return &watchdog{items: map[*watched]struct{}{}, wake: make(chan struct{}, 1)}
}

func tickFor(timeout time.Duration) time.Duration {
	t := timeout / 8
	if t < time.Millisecond {
		t = time.Millisecond
	}
	if t > 100*time.Millisecond {
		t = 100 * time.Millisecond
	}
	return t
}

func (w *watchdog) add(it *watched) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.items[it] = struct{}{}
	if t := tickFor(it.timeout); w.tick == 0 || t < w.tick {
		w.tick = t
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	if !w.running && !w.stopped {
		w.running = true
		go w.loop()
	}
}

func (w *watchdog) remove(it *watched) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.items, it)
	w.tick = 0
	for o := range w.items {
		if t := tickFor(o.timeout); w.tick == 0 || t < w.tick {
			w.tick = t
		}
	}
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watchdog) loop() {
	var items []*watched
	for {
		w.mu.Lock()
		if w.stopped || len(w.items) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		tick := w.tick
		items = items[:0]
		for it := range w.items {
			items = append(items, it)
		}
		w.mu.Unlock()
		now := monoNow()
		for _, it := range items {
			it.check(now)
		}
		t := time.NewTimer(tick)
		select {
		case <-t.C:
		case <-w.wake:
			t.Stop()
		}
	}
}
