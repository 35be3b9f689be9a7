package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
