package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// TestRingKeepsTheNewest: the hub's ring holds the newest ringMaxEntries
// changes (or fewer, ringMaxBytes), in order, without growing past its
// bound, and ringFrom names the newest change it let go.
func TestRingKeepsTheNewest(t *testing.T) {
	h := &hub{subs: map[*conn]*hubSub{}}
	const pushes = 3*ringMaxEntries + 5
	for seq := uint64(1); seq <= pushes; seq++ {
		h.push(ringEntry{seq: seq, size: 10})
	}
	if h.ring.n != ringMaxEntries || len(h.ring.buf) != ringMaxEntries+1 {
		t.Fatalf("ring holds %d entries in %d slots, want %d in %d", h.ring.n, len(h.ring.buf), ringMaxEntries, ringMaxEntries+1)
	}
	for i := range h.ring.n {
		if got, want := h.ring.at(i).seq, uint64(pushes-ringMaxEntries+1+i); got != want {
			t.Fatalf("entry %d has seq %d, want %d", i, got, want)
		}
	}
	if h.ringFrom != pushes-ringMaxEntries || h.ringSize != 10*ringMaxEntries {
		t.Fatalf("ringFrom %d ringSize %d", h.ringFrom, h.ringSize)
	}

	// Bytes: entries of 1 MiB, at most 16 held.
	for seq := uint64(pushes + 1); seq <= pushes+40; seq++ {
		h.push(ringEntry{seq: seq, size: 1 << 20})
	}
	if h.ringSize > ringMaxBytes || h.ring.at(h.ring.n-1).seq != pushes+40 || h.ringFrom != h.ring.at(0).seq-1 {
		t.Fatalf("after large entries: %d entries, %d bytes, from %d, oldest %d", h.ring.n, h.ringSize, h.ringFrom, h.ring.at(0).seq)
	}
}

// fillReducer is setReducer plus "big/fill" {n}: /big becomes a map of n
// entries in one event, a patch larger than the hub's ring may hold.
type fillReducer struct{ setReducer }

func (fillReducer) Consumes(t string) bool { return t == "kv/set" || t == "big/fill" }
func (r fillReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if rec.Type != "big/fill" {
		return r.setReducer.Reduce(ctx, rec, tx)
	}
	var p struct{ N int }
	if err := json.Unmarshal(rec.Payload, &p); err != nil {
		return err
	}
	m := make(map[string]statetree.Value, p.N)
	for i := range p.N {
		m["k"+strconv.Itoa(i)] = statetree.Int(int64(i))
	}
	big, err := statetree.Map(m)
	if err != nil {
		return err
	}
	return tx.Set(statetree.Path{"big"}, big)
}

// TestHugePatchIsSentNotHeld: one event whose patch is over ringMaxBytes
// (estimated) reaches the subscribers, the host goes on (it used to panic
// in the hub and take the process down), and a client resuming from before
// it gets a snapshot, since the ring could not keep it.
func TestHugePatchIsSentNotHeld(t *testing.T) {
	const n = ringMaxBytes/16 + 1000 // about 16 bytes an entry as JSON ("k123456":123456,)
	h := startHost(t, Config{})
	v := addView(t, h, "kv", fillReducer{})

	sub := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, sub, `{"type":"subscribe","id":1,"view":"kv"}`)
	if r := nextView(t, sub); r.Type != wire.TypeSnapshot {
		t.Fatalf("first message %+v", r)
	}
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, pub, kvEvent("w", 1, "a", 1))
	readReply(t, pub, wire.JSON)
	send(t, pub, fmt.Sprintf(`{"type":"publish","id":2,"event":{"producer":"w","pseq":2,"type":"big/fill","payload":{"n":%d}}}`, n))
	readReply(t, pub, wire.JSON)
	send(t, pub, kvEvent("w", 3, "b", 2))
	readReply(t, pub, wire.JSON)
	waitView(t, v, 3)

	for want := uint64(1); want <= 3; {
		r := nextView(t, sub)
		if r.Type != wire.TypePatch {
			continue
		}
		if r.Seq != want {
			t.Fatalf("got the patch of seq %d, want %d", r.Seq, want)
		}
		if want == 2 {
			var ops []struct {
				Path  string
				Value map[string]int
			}
			if err := json.Unmarshal(r.Ops, &ops); err != nil || len(ops) != 1 || ops[0].Path != "/big" || len(ops[0].Value) != n {
				t.Fatalf("huge patch (%d bytes): %v, %d ops", len(r.Ops), err, len(ops))
			}
		}
		want++
	}

	// Resuming from before the huge patch: a snapshot at the head.
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, ws, `{"type":"subscribe","id":2,"view":"kv","since":1}`)
	if r := nextView(t, ws); r.Type != wire.TypeSnapshot || !r.Reset || r.Seq != 3 {
		t.Fatalf("resume from before the huge patch: %+v", r)
	}
	// From after it: the patch that followed, from the ring.
	ws2 := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, ws2, `{"type":"subscribe","id":3,"view":"kv","since":2}`)
	if r := nextView(t, ws2); r.Type != wire.TypeSubscribed || r.Seq != 2 {
		t.Fatalf("resume after the huge patch: %+v", r)
	}
	if r := nextView(t, ws2); r.Type != wire.TypePatch || r.Seq != 3 || !strings.Contains(string(r.Ops), `"/b"`) {
		t.Fatalf("resumed patch: %+v", r)
	}
	hb := h.srv.hub("kv")
	hb.mu.Lock()
	defer hb.mu.Unlock()
	held := 0
	for i := range hb.ring.n {
		held += hb.ring.at(i).size
	}
	if held != hb.ringSize {
		t.Fatalf("ring counts %d bytes but holds %d", hb.ringSize, held)
	}
}

// TestRingCountsNestedValues: a change whose value nests a large one (a
// document replaced by each event) counts its whole size against
// ringMaxBytes, so the ring does not keep thousands of megabyte documents
// the state has let go of while it has no subscriber to encode them.
func TestRingCountsNestedValues(t *testing.T) {
	h := &hub{subs: map[*conn]*hubSub{}}
	for seq := uint64(1); seq <= 100; seq++ {
		body := statetree.String(strings.Repeat(strconv.FormatUint(seq%10, 10), 1<<20))
		inner, _ := statetree.Map(map[string]statetree.Value{"body": body})
		doc, _ := statetree.Map(map[string]statetree.Value{"doc": inner})
		list := statetree.Array(doc)
		h.push(ringEntry{seq: seq, raw: []statetree.Op{{Op: "replace", Path: "/d", Value: list}}, size: opsSize([]statetree.Op{{Op: "replace", Path: "/d", Value: list}})})
	}
	if h.ring.n > ringMaxBytes>>20 || h.ringSize > ringMaxBytes || h.ringSize < h.ring.n<<20 {
		t.Fatalf("ring holds %d changes of a 1 MiB document each, counted as %d bytes (bound %d)", h.ring.n, h.ringSize, ringMaxBytes)
	}
}
