package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
)

// setReducer stores each "kv/set" event's payload {k, v} at /k; other types
// leave the state alone.
type setReducer struct{}

func (setReducer) Consumes(t string) bool { return t == "kv/set" }
func (setReducer) Hash() string           { return "test-kv" }
func (setReducer) Close() error           { return nil }
func (setReducer) Reduce(_ context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	var p struct {
		K string          `json:"k"`
		V json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(rec.Payload, &p); err != nil {
		return err
	}
	v, err := statetree.FromJSON(p.V)
	if err != nil {
		return err
	}
	return tx.Set(statetree.Path{p.K}, v)
}

func addKV(t *testing.T, h *testHost) *view.View {
	t.Helper()
	return addView(t, h, "kv", setReducer{})
}

// addView serves a view of red named name, run until the test ends.
func addView(t *testing.T, h *testHost, name string, red view.Reducer) *view.View {
	t.Helper()
	v, err := view.New(view.Config{Name: name, Reducer: red, Log: h.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	h.srv.AddView(v)
	return v
}

func send(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func kvEvent(producer string, pseq uint64, k string, v any) string {
	b, _ := json.Marshal(map[string]any{"type": "publish", "id": pseq, "event": map[string]any{
		"producer": producer, "pseq": pseq, "type": "kv/set", "payload": map[string]any{"k": k, "v": v}}})
	return string(b)
}

// nextView reads until a view message (snapshot, patch, progress, subscribed).
func nextView(t *testing.T, ws *websocket.Conn) wire.Reply {
	t.Helper()
	for {
		r := readReply(t, ws, wire.JSON)
		switch r.Type {
		case wire.TypeAck, wire.TypePong:
			continue
		}
		return r
	}
}

func TestSubscribeSnapshotPatchesProgress(t *testing.T) {
	h := startHost(t, Config{})
	addKV(t, h)
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, pub, kvEvent("w", 1, "a", 1))
	readReply(t, pub, wire.JSON)

	sub := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, sub, `{"type":"subscribe","id":5,"view":"kv"}`)
	snap := nextView(t, sub)
	if snap.Type != wire.TypeSnapshot || snap.ID != 5 || snap.View != "kv" {
		t.Fatalf("first message %+v", snap)
	}
	// The snapshot reflects seq 1 (or the view is still at 0 and a patch follows).
	send(t, pub, kvEvent("w", 2, "b", "x"))
	send(t, pub, `{"type":"publish","id":3,"event":{"producer":"w","pseq":3,"type":"other/thing"}}`)
	var patches []wire.Reply
	var progress uint64
	deadline := time.Now().Add(10 * time.Second)
	for progress < 3 && time.Now().Before(deadline) {
		r := nextView(t, sub)
		if r.Seq <= snap.Seq {
			continue
		}
		switch r.Type {
		case wire.TypePatch:
			patches = append(patches, r)
		case wire.TypeProgress:
			progress = r.Seq
		default:
			t.Fatalf("unexpected %+v", r)
		}
	}
	if progress != 3 {
		t.Fatalf("no progress marker for seq 3 (an event the view ignores)")
	}
	last := patches[len(patches)-1]
	if last.Seq != 2 || string(last.Ops) != `[{"op":"add","path":"/b","value":"x"}]` {
		t.Fatalf("patch for seq 2: %+v %s", last, last.Ops)
	}
}

func TestSubscribeMissingView(t *testing.T) {
	h := startHost(t, Config{})
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, ws, `{"type":"subscribe","id":8,"view":"nope"}`)
	r := readReply(t, ws, wire.JSON)
	if r.Type != wire.TypeError || r.Code != wire.CodeNotFound || r.ID != 8 || !strings.Contains(r.Error, "GET /v1/views") {
		t.Fatalf("%+v", r)
	}
}

func TestResumeSendsMissedPatchesOnce(t *testing.T) {
	h := startHost(t, Config{})
	v := addKV(t, h)
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	for i := uint64(1); i <= 10; i++ {
		send(t, pub, kvEvent("w", i, fmt.Sprint("k", i), i))
		readReply(t, pub, wire.JSON)
	}
	waitView(t, v, 10)
	// "Disconnect" at seq 10; five more events happen meanwhile.
	for i := uint64(11); i <= 15; i++ {
		send(t, pub, kvEvent("w", i, fmt.Sprint("k", i), i))
		readReply(t, pub, wire.JSON)
	}
	waitView(t, v, 15)
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, ws, `{"type":"subscribe","id":2,"view":"kv","since":10}`)
	if r := nextView(t, ws); r.Type != wire.TypeSubscribed || r.Seq != 10 {
		t.Fatalf("resume reply %+v", r)
	}
	// The hub keeps changes as ops and encodes them on first use: these
	// five were made with no subscriber, so the resume is their first use.
	for want := uint64(11); want <= 15; want++ {
		r := nextView(t, ws)
		if r.Type != wire.TypePatch || r.Seq != want {
			t.Fatalf("got %+v, want the patch of seq %d", r, want)
		}
		if !strings.Contains(string(r.Ops), fmt.Sprintf(`"/k%d"`, want)) {
			t.Fatalf("patch of seq %d: %s", want, r.Ops)
		}
	}
	// A since older than anything held gets a reset snapshot.
	ws2 := mustDial(t, h.addr, wire.SubprotocolJSON)
	h.srv.hub("kv").mu.Lock()
	h.srv.hub("kv").ringFrom = 12 // as if the ring had dropped older changes
	h.srv.hub("kv").mu.Unlock()
	send(t, ws2, `{"type":"subscribe","id":3,"view":"kv","since":5}`)
	if r := nextView(t, ws2); r.Type != wire.TypeSnapshot || !r.Reset || r.Seq != 15 {
		t.Fatalf("stale resume: %+v", r)
	}
}

// dialSlow connects a JSON client with a tiny receive buffer, so that the
// server's queue for it fills however large the machine's socket buffers
// are once it stops reading.
func dialSlow(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}, NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	ws, _, err := d.Dial("ws://"+addr+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func waitView(t *testing.T, v *view.View, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// TestSlowConsumerDoesNotStallOthers: one subscriber stops reading; another
// keeps receiving every patch promptly, and the stalled one is resynced or
// cut off within a bounded time.
func TestSlowConsumerDoesNotStallOthers(t *testing.T) {
	h := startHost(t, Config{SendQueue: 256, WriteTimeout: 2 * time.Second, PingInterval: 500 * time.Millisecond, PongTimeout: 3 * time.Second})
	v := addKV(t, h)
	slow := dialSlow(t, h.addr)
	defer slow.Close()
	send(t, slow, `{"type":"subscribe","id":1,"view":"kv"}`)
	fast := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, fast, `{"type":"subscribe","id":1,"view":"kv"}`)
	first := nextView(t, fast)
	doc, err := statetree.FromJSON(first.State)
	if err != nil {
		t.Fatal(err)
	}
	docSeq := first.Seq

	big := strings.Repeat("x", 8000) // fill the slow client's socket buffers quickly
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	const n = 600
	go func() {
		for i := uint64(1); i <= n; i++ {
			pub.WriteMessage(websocket.TextMessage, []byte(kvEvent("w", i, fmt.Sprint("k", i%50), fmt.Sprint(i, big))))
		}
	}()
	start := time.Now()
	resets := 0
	for docSeq < n {
		r := nextView(t, fast)
		switch {
		case r.Type == wire.TypeSnapshot:
			resets++
			if doc, err = statetree.FromJSON(r.State); err != nil {
				t.Fatal(err)
			}
			docSeq = r.Seq
		case r.Seq <= docSeq:
		case r.Type == wire.TypePatch:
			var ops []statetree.Op
			if err := json.Unmarshal(r.Ops, &ops); err != nil {
				t.Fatal(err)
			}
			if doc, err = statetree.Apply(doc, ops); err != nil {
				t.Fatal(err)
			}
			docSeq = r.Seq
		case r.Type == wire.TypeProgress:
			docSeq = r.Seq
		}
	}
	took := time.Since(start)
	waitView(t, v, n)
	if root, _ := v.State(); root.Hash() != doc.Hash() {
		t.Fatal("the reading subscriber's document differs from the view's state")
	}
	t.Logf("reading subscriber: %d resets during the burst", resets)
	t.Logf("fast subscriber got all %d events in %v while the other did not read", n, took)
	if took > 8*time.Second {
		t.Fatalf("fast subscriber took %v: the slow one stalled it", took)
	}
	// The subscriber that never reads is disconnected within a bounded time
	// (the write timeout), and no longer holds a subscription.
	deadline := time.Now().Add(15 * time.Second)
	for {
		h.srv.hub("kv").mu.Lock()
		n := len(h.srv.hub("kv").subs)
		h.srv.hub("kv").mu.Unlock()
		if n < 2 { // the fast subscriber may be gone too once the test stops reading it
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions 15 s after the burst: the subscriber that stopped reading was not disconnected", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the subscriber that stopped reading was disconnected %v after the burst", time.Since(start)-took)
}

// TestStateETag: a state read carries the value's Merkle hash as its ETag;
// If-None-Match with it gives 304 until the state changes.
func TestStateETag(t *testing.T) {
	h := startHost(t, Config{})
	v := addKV(t, h)
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, pub, kvEvent("w", 1, "a", 1))
	readReply(t, pub, wire.JSON)
	waitView(t, v, 1)
	get := func(etag string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", "http://"+h.addr+"/v1/views/kv/state", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	r1, body := get("")
	etag := r1.Header.Get("ETag")
	if r1.StatusCode != 200 || body != `{"a":1}` || len(etag) != 66 {
		t.Fatalf("first read: %d %q etag %q", r1.StatusCode, body, etag)
	}
	if r, b := get(etag); r.StatusCode != http.StatusNotModified || b != "" {
		t.Fatalf("If-None-Match with the current ETag: %d %q", r.StatusCode, b)
	}
	if _, b := get(""); b != body {
		t.Fatalf("second read (cached) %q, want %q", b, body)
	}
	send(t, pub, kvEvent("w", 2, "a", 2))
	readReply(t, pub, wire.JSON)
	waitView(t, v, 2)
	r3, b3 := get(etag)
	if r3.StatusCode != 200 || b3 != `{"a":2}` || r3.Header.Get("ETag") == etag {
		t.Fatalf("after a change: %d %q etag %q", r3.StatusCode, b3, r3.Header.Get("ETag"))
	}
}

// TestRepeatedSubscribesDoNotQueueASnapshotEach: a client that subscribes
// to a large view again and again without reading used to get a copy of
// the whole state queued for each subscribe (up to SendQueue of them, a
// few GiB for a view of one MiB, for a few KiB of requests). Beyond the
// first of each view, the snapshots waiting in a connection's queue are
// bounded (maxQueuedSnapshotBytes); the others are skipped like a lagging
// subscriber's, and the client still ends up with the state. A client that
// reads gets a snapshot with its id for each of its subscribes.
func TestRepeatedSubscribesDoNotQueueASnapshotEach(t *testing.T) {
	h := startHost(t, Config{WriteTimeout: 30 * time.Second})
	v := addKV(t, h)
	pub := mustDial(t, h.addr, wire.SubprotocolJSON)
	big := strings.Repeat("x", 600<<10)
	send(t, pub, kvEvent("w", 1, "a", big))
	readReply(t, pub, wire.JSON)
	send(t, pub, kvEvent("w", 2, "b", big))
	readReply(t, pub, wire.JSON)
	send(t, pub, kvEvent("w", 3, "c", big))
	readReply(t, pub, wire.JSON)
	send(t, pub, kvEvent("w", 4, "d", big))
	readReply(t, pub, wire.JSON)
	waitView(t, v, 4) // a state of 2.4 MB

	// A client that does not read.
	slow := dialSlow(t, h.addr)
	defer slow.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 150
	for i := range n {
		send(t, slow, fmt.Sprintf(`{"type":"subscribe","id":%d,"view":"kv"}`, i+1))
	}
	// An unsubscribe after them: once the hub has no subscriber, the
	// server has handled every subscribe.
	send(t, slow, `{"type":"unsubscribe","id":999,"view":"kv"}`)
	hb := h.srv.hub("kv")
	deadline := time.Now().Add(10 * time.Second)
	for {
		hb.mu.Lock()
		subs := len(hb.subs)
		hb.mu.Unlock()
		if subs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not handle the subscribes within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %d MB for %d subscribes to a 2.4 MB view", grew>>20, n)
	if grew > 120<<20 { // 360 MB when a snapshot was queued for each
		t.Fatalf("heap grew by %d MB for %d subscribes to a 2.4 MB view by a client that does not read: a snapshot is queued for each", grew>>20, n)
	}

	// A client that reads gets each of its subscribes answered with its id.
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	send(t, ws, `{"type":"subscribe","id":1,"view":"kv"}`)
	send(t, ws, `{"type":"subscribe","id":2,"view":"kv"}`)
	for id := uint64(1); id <= 2; id++ {
		r := nextView(t, ws)
		if r.Type != wire.TypeSnapshot || r.ID != id || r.Seq != 4 || len(r.State) < 2400<<10 {
			t.Fatalf("reading subscriber, subscribe %d: %s id %d at seq %d, %d bytes of state", id, r.Type, r.ID, r.Seq, len(r.State))
		}
	}
}
