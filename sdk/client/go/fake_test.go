package client

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/nodb-dev/nodb/abi/wire"
)

// fakeHost is an in-memory nodb host that follows the exactly-once rules of
// abi/PROTOCOL.md, with knobs to break connections and refuse writes. It
// lets the client's retry logic be tested without the real server.
type fakeHost struct {
	t  *testing.T
	mu sync.Mutex
	// log is the accepted events in seq order (seq = index+1).
	log  []wire.Event
	last map[string]uint64   // producer -> last pseq
	seqs map[string][]uint64 // producer -> seq of pseq i+1
	// dropAfter, when > 0, closes a connection after it has handled that
	// many publishes (storing the last one but not acking it).
	dropAfter int
	// unavailable is how many publishes to refuse with "unavailable".
	unavailable int
	// silent stops all replies (publishes are stored).
	silent bool
	conns  int
	srv    *httptest.Server
}

func newFakeHost(t *testing.T) *fakeHost {
	h := &fakeHost{t: t, last: map[string]uint64{}, seqs: map[string][]uint64{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHost) url() string { return "ws" + strings.TrimPrefix(h.srv.URL, "http") + "/v1/ws" }

var fakeUpgrader = websocket.Upgrader{Subprotocols: []string{wire.SubprotocolJSON, wire.SubprotocolCBOR}}

func (h *fakeHost) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := fakeUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	ws.SetReadLimit(wire.DefaultMaxFrame) // as nodb serve: a larger frame closes with 1009
	f, ok := wire.FormatOf(ws.Subprotocol())
	if !ok {
		return
	}
	mt := websocket.TextMessage
	if f == wire.CBOR {
		mt = websocket.BinaryMessage
	}
	h.mu.Lock()
	h.conns++
	head := uint64(len(h.log))
	h.mu.Unlock()
	if err := ws.WriteMessage(mt, wire.AppendReply(f, nil, &wire.Reply{Type: wire.TypeHello, Protocol: 1, Server: "fake", MaxFrame: wire.DefaultMaxFrame, Head: head})); err != nil {
		return
	}
	handled := 0
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var req wire.Request
		if err := wire.DecodeRequest(f, data, &req); err != nil {
			de := err.(*wire.DecodeError)
			ws.WriteMessage(mt, wire.AppendError(f, nil, de.ID, &wire.Error{Code: wire.CodeBadRequest, Message: de.Message}))
			continue
		}
		if req.Type != wire.TypePublish {
			continue
		}
		h.mu.Lock()
		var reply []byte
		if h.unavailable > 0 {
			h.unavailable--
			reply = wire.AppendError(f, nil, req.ID, &wire.Error{Code: wire.CodeUnavailable, Message: "disk on fire"})
		} else {
			ev := req.Event
			last := h.last[ev.Producer]
			switch {
			case ev.PSeq <= last:
				reply = wire.AppendAck(f, nil, req.ID, wire.Ack{Seq: h.seqs[ev.Producer][ev.PSeq-1], Duplicate: true})
			case ev.PSeq > last+1:
				reply = wire.AppendError(f, nil, req.ID, &wire.Error{Code: wire.CodePSeqGap, Message: "gap", ExpectedPSeq: last + 1})
			default:
				h.log = append(h.log, ev)
				seq := uint64(len(h.log))
				h.last[ev.Producer] = ev.PSeq
				h.seqs[ev.Producer] = append(h.seqs[ev.Producer], seq)
				reply = wire.AppendAck(f, nil, req.ID, wire.Ack{Seq: seq})
			}
		}
		handled++
		drop := h.dropAfter > 0 && handled >= h.dropAfter
		silent := h.silent
		h.mu.Unlock()
		if drop {
			return
		}
		if !silent {
			if err := ws.WriteMessage(mt, reply); err != nil {
				return
			}
		}
	}
}

// check verifies the log holds every (producer, pseq) exactly once, pseqs
// of each producer in order, and returns the number of events.
func (h *fakeHost) check(t *testing.T) int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	next := map[string]uint64{}
	for i, ev := range h.log {
		if ev.PSeq != next[ev.Producer]+1 {
			t.Fatalf("seq %d: producer %s pseq %d, want %d", i+1, ev.Producer, ev.PSeq, next[ev.Producer]+1)
		}
		next[ev.Producer] = ev.PSeq
	}
	return len(h.log)
}
