package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
)

// failAtReducer is setReducer failing (not rejecting) the event at seq at:
// the view halts there.
type failAtReducer struct {
	setReducer
	at uint64
}

func (r failAtReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if rec.Seq == r.at {
		return errors.New("reducer trapped")
	}
	return r.setReducer.Reduce(ctx, rec, tx)
}

// TestStateAtPastAHaltSaysTheViewHalted: a read of a seq past the event at
// which a view halted used to say the seq "is not reached yet", as if the
// client only had to wait; a halted view never gets there until a fixed
// version is activated, and the reply says so.
func TestStateAtPastAHaltSaysTheViewHalted(t *testing.T) {
	h := startHost(t, Config{})
	v := addView(t, h, "kv", failAtReducer{at: 3})
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	for i := uint64(1); i <= 4; i++ {
		send(t, pub, kvEvent("w", i, fmt.Sprint("k", i), i))
		readReply(t, pub, wire.JSON)
	}
	deadline := time.Now().Add(10 * time.Second)
	for v.Status().Phase != view.PhaseHalted {
		if time.Now().After(deadline) {
			t.Fatalf("the view did not halt: %+v", v.Status())
		}
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Get("http://" + h.addr + "/v1/views/kv/state?at=4")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "not reached yet") ||
		!strings.Contains(string(b), "halted") || !strings.Contains(string(b), "seq 3") || !strings.Contains(string(b), "activate") {
		t.Fatalf("state at seq 4 of a view halted at seq 3: %d %s", resp.StatusCode, b)
	}
}

// gatedReducer is setReducer whose Reduce waits for release, counting the
// calls waiting in entered: the instances StateAt makes for past states.
type gatedReducer struct {
	setReducer
	entered *atomic.Int32
	release chan struct{}
}

func (r gatedReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	r.entered.Add(1)
	select {
	case <-r.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.setReducer.Reduce(ctx, rec, tx)
}

// TestPastStateReadsAreBounded: each read of a past state makes a fresh
// reducer instance and replays history into it. Any token that may read a
// view could send as many at once as it liked, and the host ran them all
// at once (a Wasm instance and a replay each). Now at most
// MaxPastStateReads are computed at a time and the others wait their turn;
// all are answered.
func TestPastStateReadsAreBounded(t *testing.T) {
	h := startHost(t, Config{MaxPastStateReads: 2})
	var entered atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	factory := func(context.Context, uint64) (view.Reducer, error) {
		return gatedReducer{entered: &entered, release: release}, nil
	}
	v, err := view.New(view.Config{Name: "kv", Reducer: setReducer{}, Log: h.log, Factory: factory})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	h.srv.AddView(v)
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	for i := uint64(1); i <= 3; i++ {
		send(t, pub, kvEvent("w", i, fmt.Sprint("k", i), i))
		readReply(t, pub, wire.JSON)
	}
	waitView(t, v, 3)

	const reads = 8
	bodies := make(chan string, reads)
	for range reads {
		go func() {
			resp, err := http.Get("http://" + h.addr + "/v1/views/kv/state?at=1")
			if err != nil {
				bodies <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies <- fmt.Sprint(resp.StatusCode, " ", string(b))
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for entered.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d past-state reads started, want 2", entered.Load())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // time for more to start, if they could
	if n := entered.Load(); n != 2 {
		t.Fatalf("%d past-state reads replaying at once, want at most 2", n)
	}
	free()
	for range reads {
		if b := <-bodies; b != `200 {"k1":1}` {
			t.Fatalf("a past-state read answered %s", b)
		}
	}
}
