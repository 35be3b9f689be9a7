package plugins

import (
	"sync"
	"time"
)

// The watchdog enforces per-event time limits without a timer or context per
// event: an Instance records the monotonic time at which its current guest
// call started, and one goroutine per Runtime checks all busy instances every
// tick and fires the stop function of any that ran over (it sets the guest's
// stop global, see instrument.go). Per event this costs one clock read and
// two uncontended mutex sections. The time limit is enforced with a
// granularity of one tick: timeout/4, between 1 ms and 100 ms.

var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

type watched struct {
	timeout time.Duration
	stop    func() // called with mu held when the deadline passes

	mu        sync.Mutex
	busySince int64 // monoNow() when the guest call started; 0 when idle
	fired     bool
}

// begin marks the start of a guest call.
func (w *watched) begin() {
	now := monoNow()
	w.mu.Lock()
	w.busySince = now
	w.mu.Unlock()
}

// end marks the end of a guest call and reports whether it ran out of time.
func (w *watched) end() bool {
	w.mu.Lock()
	w.busySince = 0
	fired := w.fired
	w.mu.Unlock()
	return fired
}

func (w *watched) check(now int64) {
	w.mu.Lock()
	if w.busySince != 0 && !w.fired && time.Duration(now-w.busySince) > w.timeout {
		w.fired = true
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
	t := timeout / 4
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
