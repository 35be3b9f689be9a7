package plugins

import (
	"testing"
	"time"
)

// TestWatchedFiresOnlyOverrunningCalls drives one watched item with made-up
// tick times: a call is stopped only once it has been seen running under
// the same generation for longer than the timeout, never a call that ended
// in time however many ticks saw it, and never a later call.
func TestWatchedFiresOnlyOverrunningCalls(t *testing.T) {
	const ms = int64(time.Millisecond)
	stops := 0
	w := &watched{timeout: 10 * time.Millisecond, stop: func() { stops++ }}

	// Short calls, each seen by one or two ticks: never stopped.
	now := int64(0)
	for k := 0; k < 100; k++ {
		w.begin()
		w.check(now)
		now += 6 * ms
		w.check(now)
		if w.end() {
			t.Fatalf("call %d reported as timed out", k)
		}
		now += 6 * ms
		w.check(now)
	}
	if stops != 0 || w.timedOut() {
		t.Fatalf("%d stops for calls within the limit", stops)
	}

	// A long call: not stopped until the timeout has passed since it was
	// first seen, then stopped once.
	w.begin()
	first := now
	for ; now <= first+10*ms; now += ms {
		w.check(now)
		if stops != 0 {
			t.Fatalf("stopped %v after first sight", time.Duration(now-first))
		}
	}
	w.check(now)
	w.check(now + ms)
	if stops != 1 || !w.timedOut() {
		t.Fatalf("overrunning call: %d stops, timedOut %v", stops, w.timedOut())
	}
	if !w.end() || !w.timedOut() {
		t.Fatal("end did not report the stop")
	}

	// The next call starts clean.
	w.begin()
	if w.timedOut() {
		t.Fatal("a new call starts timed out")
	}
	w.check(now + 2*ms)
	if w.end() || stops != 1 {
		t.Fatalf("a new short call: %d stops", stops)
	}
}

// TestWatchedNoStaleStop: the watchdog saw a call overrun, but the call
// ended (and another began) before it fired. The stop must not land on the
// new call.
func TestWatchedNoStaleStop(t *testing.T) {
	const ms = int64(time.Millisecond)
	stops := 0
	w := &watched{timeout: 10 * time.Millisecond, stop: func() { stops++ }}
	w.begin()
	w.check(0)
	s := w.state.Load()
	w.end()
	w.begin()
	w.fire(s) // what check does with a state it loaded before the call ended
	if stops != 0 || w.timedOut() {
		t.Fatal("a stop meant for an ended call hit the next one")
	}
	w.check(20 * ms) // the new call is seen for the first time
	if stops != 0 {
		t.Fatal("the new call was stopped at its first sight")
	}
	w.end()
}
