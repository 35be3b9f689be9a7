package plugins

import (
	"sync"
	"sync/atomic"
	"time"
)

// The watchdog enforces per-event time limits without a timer or context per
// event: an Instance stores the monotonic time at which its current guest call
// started, and one goroutine per Runtime checks all busy instances every tick
// and cancels the context of any that ran over (which makes wazero close the
// module: WithCloseOnContextDone). Per event this costs one clock read and
// two atomic stores. The time limit is therefore enforced with a granularity
// of one tick: timeout/4, between 1 ms and 100 ms.

var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

type watched struct {
	busySince atomic.Int64 // monoNow() when the guest call started; 0 when idle
	timeout   time.Duration
	expire    func()
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
	var expired []*watched
	for {
		w.mu.Lock()
		if w.stopped || len(w.items) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		tick := w.tick
		now := monoNow()
		expired = expired[:0]
		for it := range w.items {
			if s := it.busySince.Load(); s != 0 && time.Duration(now-s) > it.timeout {
				expired = append(expired, it)
			}
		}
		w.mu.Unlock()
		for _, it := range expired {
			it.expire()
		}
		t := time.NewTimer(tick)
		select {
		case <-t.C:
		case <-w.wake:
			t.Stop()
		}
	}
}
