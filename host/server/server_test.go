package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/chronicler"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

// failFS is the real file system with a switch that makes every sync fail,
// as a dying disk would.
type failFS struct {
	filelog.OSFS
	failSync atomic.Bool
}

type failFile struct {
	filelog.File
	fs *failFS
}

func (f *failFS) OpenFile(name string, flag int, perm os.FileMode) (filelog.File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return failFile{file, f}, nil
}

func (f failFile) Sync() error {
	if f.fs.failSync.Load() {
		return fmt.Errorf("injected: %w", syscall.EIO)
	}
	return f.File.Sync()
}

type testHost struct {
	srv      *Server
	addr     string
	log      *filelog.Log
	chron    *chronicler.Chronicler
	fs       *failFS
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

func startHost(t *testing.T, cfg Config) *testHost {
	t.Helper()
	return startHostWith(t, cfg, chronicler.Config{})
}

// startHostWith is startHost with the chronicler configured by ccfg (its
// Metrics are the server's).
func startHostWith(t *testing.T, cfg Config, ccfg chronicler.Config) *testHost {
	t.Helper()
	h := &testHost{fs: &failFS{}, done: make(chan error, 1)}
	lcfg := filelog.DefaultConfig(t.TempDir())
	lcfg.FS = h.fs
	var err error
	if h.log, err = filelog.Open(lcfg); err != nil {
		t.Fatal(err)
	}
	h.srv = New(cfg)
	ccfg.Metrics = h.srv.ChronMetrics
	if h.chron, err = chronicler.New(context.Background(), h.log, ccfg); err != nil {
		t.Fatal(err)
	}
	h.srv.SetChronicler(h.chron)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		h.stop()
	})
	return h
}

func (h *testHost) stop() {
	h.stopOnce.Do(func() {
		h.cancel()
		<-h.done
		h.chron.Close()
		h.log.Close()
	})
}

func dial(t *testing.T, addr string, proto string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{proto}}
	return d.Dial("ws://"+addr+"/v1/ws", hdr)
}

func mustDial(t *testing.T, addr, proto string) *websocket.Conn {
	t.Helper()
	ws, resp, err := dial(t, addr, proto, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != proto {
		t.Fatalf("subprotocol echoed %q, want %q", got, proto)
	}
	t.Cleanup(func() { ws.Close() })
	f, _ := wire.FormatOf(proto)
	if r := readReply(t, ws, f); r.Type != wire.TypeHello || r.Protocol != 1 {
		t.Fatalf("first message %+v, want hello", r)
	}
	return ws
}

func readReply(t *testing.T, ws *websocket.Conn, f wire.Format) wire.Reply {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	want := websocket.TextMessage
	if f == wire.CBOR {
		want = websocket.BinaryMessage
	}
	if mt != want {
		t.Fatalf("frame type %d for %s", mt, f)
	}
	var r wire.Reply
	if err := wire.DecodeReply(f, data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func publish(t *testing.T, ws *websocket.Conn, f wire.Format, id uint64, producer string, pseq uint64) {
	t.Helper()
	msg, err := wire.EncodeRequest(f, &wire.Request{Type: wire.TypePublish, ID: id, Event: wire.Event{Producer: producer, PSeq: pseq, Type: "t", Payload: []byte(`{"x":1}`)}})
	if err != nil {
		t.Fatal(err)
	}
	mt := websocket.TextMessage
	if f == wire.CBOR {
		mt = websocket.BinaryMessage
	}
	if err := ws.WriteMessage(mt, msg); err != nil {
		t.Fatal(err)
	}
}

func TestPublishJSONAndCBOR(t *testing.T) {
	h := startHost(t, Config{})
	for i, proto := range []string{wire.SubprotocolJSON, wire.SubprotocolCBOR} {
		f, _ := wire.FormatOf(proto)
		ws := mustDial(t, h.addr, proto)
		producer := fmt.Sprint("p", i)
		publish(t, ws, f, 1, producer, 1)
		publish(t, ws, f, 2, producer, 2)
		publish(t, ws, f, 3, producer, 1) // re-send
		publish(t, ws, f, 4, producer, 9) // gap
		r1, r2, r3, r4 := readReply(t, ws, f), readReply(t, ws, f), readReply(t, ws, f), readReply(t, ws, f)
		if r1.Type != wire.TypeAck || r1.ID != 1 || r2.ID != 2 || r2.Seq != r1.Seq+1 {
			t.Fatalf("%s acks: %+v %+v", proto, r1, r2)
		}
		if !r3.Duplicate || r3.Seq != r1.Seq || r3.ID != 3 {
			t.Fatalf("%s re-send: %+v", proto, r3)
		}
		if r4.Type != wire.TypeError || r4.Code != wire.CodePSeqGap || r4.ExpectedPSeq != 3 || r4.ID != 4 {
			t.Fatalf("%s gap: %+v", proto, r4)
		}
	}
	if h.log.LastSeq() != 4 {
		t.Fatalf("log head %d, want 4", h.log.LastSeq())
	}
}

// TestAckedPublishLetsGoOfItsEvent: once a publish is decided, its slot
// keeps only the reply. A slot waits in the connection's queue until the
// client reads the replies before it, and MaxInFlight slots each keeping an
// event of up to MaxFrame bytes would let one client that sends without
// reading hold MaxInFlight × MaxFrame bytes of the server's memory, past
// the chronicler's byte bounds.
func TestAckedPublishLetsGoOfItsEvent(t *testing.T) {
	h := startHost(t, Config{})
	c := &conn{format: wire.JSON}
	sl := newSlot(7)
	sl.req = chronicler.Request{Event: wire.Event{Producer: "p", PSeq: 1, Type: "t", Payload: []byte(`"` + strings.Repeat("x", 1000) + `"`)},
		Done: c.publishDone, Ctx: sl}
	h.chron.Submit(context.Background(), &sl.req)
	<-sl.done
	var r wire.Reply
	if err := json.Unmarshal(sl.msg, &r); err != nil || r.Type != wire.TypeAck || r.ID != 7 || r.Seq != 1 {
		t.Fatalf("reply %s (%v), want the ack of seq 1 for id 7", sl.msg, err)
	}
	if e := sl.req.Event; e.Payload != nil || e.Producer != "" || e.Type != "" {
		t.Fatalf("the acked slot still holds its event (%d payload bytes)", len(e.Payload))
	}
}

func TestBadInputGetsClearErrorsAndWritesNothing(t *testing.T) {
	h := startHost(t, Config{})
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	cases := []struct{ msg, code, want string }{
		{`{"type":"publish","id":1,"event":{"producer":"p","pseq":-1,"type":"t"}}`, wire.CodeBadRequest, `"event.pseq" is -1`},
		{`{"type":"publish","id":2,"event":{"producer":"p","pseq":99999999999999999999,"type":"t"}}`, wire.CodeBadRequest, "2^53-1"},
		{`{"type":"publish","id":3,"event":{"producer":"p","pseq":1}}`, wire.CodeBadRequest, `"type" is missing`},
		{"{\"type\":\"publish\",\"id\":4,\"event\":{\"producer\":\"p\",\"pseq\":1,\"type\":\"\xc3\x28\"}}", wire.CodeBadRequest, "UTF-8"},
		{`{"type":"publish","id":5,"event":{"producer":"p","pseq":1,"type":"t","payload":{"a":}}}`, wire.CodeBadRequest, "malformed JSON"},
		{`{"type":"frobnicate","id":6}`, wire.CodeUnknownType, `unknown message type "frobnicate"`},
		{`not json`, wire.CodeBadRequest, "malformed JSON"},
	}
	for _, c := range cases {
		ws.WriteMessage(websocket.TextMessage, []byte(c.msg))
		r := readReply(t, ws, wire.JSON)
		if r.Type != wire.TypeError || r.Code != c.code || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s: got %+v, want %s containing %q", c.msg, r, c.code, c.want)
		}
	}
	// The connection still works, and nothing was written.
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":77}`))
	if r := readReply(t, ws, wire.JSON); r.Type != wire.TypePong || r.ID != 77 {
		t.Fatalf("ping: %+v", r)
	}
	if h.log.LastSeq() != 0 {
		t.Fatalf("bad input wrote %d records", h.log.LastSeq())
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	h := startHost(t, Config{MaxFrame: 4096})
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	big := fmt.Sprintf(`{"type":"publish","id":1,"event":{"producer":"p","pseq":1,"type":"t","payload":"%s"}}`, strings.Repeat("x", 5000))
	ws.WriteMessage(websocket.TextMessage, []byte(big))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("got %v, want close 1009", err)
	}
	if h.log.LastSeq() != 0 {
		t.Fatal("an oversized frame was written")
	}
}

func TestWrongFrameTypeCloses1002(t *testing.T) {
	h := startHost(t, Config{})
	ws := mustDial(t, h.addr, wire.SubprotocolCBOR)
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseProtocolError || !strings.Contains(ce.Text, "binary") {
		t.Fatalf("got %v, want close 1002 explaining binary frames", err)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	h := startHost(t, Config{AllowedOrigins: []string{"https://app.example"}})
	_, resp, err := dial(t, h.addr, "chat", nil)
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("no nodb subprotocol: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), wire.SubprotocolJSON) {
		t.Fatalf("refusal does not name the subprotocols: %s", body)
	}
	_, resp, err = dial(t, h.addr, wire.SubprotocolJSON, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("forged origin: %v %v", err, resp)
	}
	ws, _, err := dial(t, h.addr, wire.SubprotocolJSON, http.Header{"Origin": {"https://app.example"}})
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	ws.Close()
}

func post(t *testing.T, addr, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestHTTPPublish(t *testing.T) {
	h := startHost(t, Config{MaxFrame: 2048})
	if code, m := post(t, h.addr, `{"producer":"curl","pseq":1,"type":"t","payload":{"a":1}}`); code != 200 || m["seq"] != 1.0 || m["duplicate"] != false {
		t.Fatalf("publish: %d %v", code, m)
	}
	if code, m := post(t, h.addr, `{"producer":"curl","pseq":1,"type":"t","payload":{"a":1}}`); code != 200 || m["duplicate"] != true || m["seq"] != 1.0 {
		t.Fatalf("re-send: %d %v", code, m)
	}
	if code, m := post(t, h.addr, `{"producer":"curl","pseq":5,"type":"t"}`); code != 409 || m["expected_pseq"] != 2.0 {
		t.Fatalf("gap: %d %v", code, m)
	}
	if code, m := post(t, h.addr, `{"producer":"curl","pseq":2}`); code != 400 || !strings.Contains(fmt.Sprint(m["error"]), `"type" is missing`) {
		t.Fatalf("missing type: %d %v", code, m)
	}
	if code, _ := post(t, h.addr, `{"producer":"curl","pseq":2,"type":"t","payload":"`+strings.Repeat("x", 3000)+`"}`); code != 413 {
		t.Fatalf("too large: %d", code)
	}
	if h.log.LastSeq() != 1 {
		t.Fatalf("log head %d", h.log.LastSeq())
	}
}

// TestHTTPPublishOverRecordSize: an event within the request limit but over
// the log's record limit (as stored) is answered 413 too_large, as
// PROTOCOL.md says, not 503, which tells a client to retry the same event
// for ever.
func TestHTTPPublishOverRecordSize(t *testing.T) {
	h := startHostWith(t, Config{MaxFrame: 4096}, chronicler.Config{MaxRecordSize: 100})
	code, m := post(t, h.addr, `{"producer":"curl","pseq":1,"type":"t","payload":"`+strings.Repeat("x", 500)+`"}`)
	if code != http.StatusRequestEntityTooLarge || m["code"] != wire.CodeTooLarge {
		t.Fatalf("over the record limit: %d %v", code, m)
	}
	if code, m := post(t, h.addr, `{"producer":"curl","pseq":1,"type":"t","payload":"small"}`); code != 200 || m["seq"] != 1.0 {
		t.Fatalf("a small event after it: %d %v", code, m)
	}
}

// TestOpenModeRefusesHostNames: without tokens, a request whose Host is a
// name other than localhost is refused (DNS rebinding: a page served from
// a name its owner points at 127.0.0.1 is of the same origin as the host,
// so it could read state and, passing the Origin check, write); localhost
// and IP addresses are served.
func TestOpenModeRefusesHostNames(t *testing.T) {
	h := startHost(t, Config{})
	_, port, _ := net.SplitHostPort(h.addr)
	get := func(host string) int {
		req, _ := http.NewRequest("GET", "http://"+h.addr+"/v1/views", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for host, want := range map[string]int{
		"rebound.example:" + port: http.StatusForbidden,
		"rebound.example":         http.StatusForbidden,
		"127.0.0.1:" + port:       http.StatusOK,
		"localhost:" + port:       http.StatusOK,
		"LOCALHOST":               http.StatusOK,
		"[::1]:" + port:           http.StatusOK,
		"10.1.2.3":                http.StatusOK,
	} {
		if got := get(host); got != want {
			t.Errorf("Host %q: %d, want %d", host, got, want)
		}
	}
	// A write from the rebound page: its Origin is its own name, as is the
	// Host, so the Origin check alone let it through.
	req, _ := http.NewRequest("POST", "http://"+h.addr+"/v1/events", strings.NewReader(`{"producer":"p","pseq":1,"type":"t"}`))
	req.Host = "rebound.example:" + port
	req.Header.Set("Origin", "http://rebound.example:"+port)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || h.log.LastSeq() != 0 {
		t.Fatalf("a write from a rebound name: %d, log head %d", resp.StatusCode, h.log.LastSeq())
	}
}

func TestSyncFailureStopsAcking(t *testing.T) {
	h := startHost(t, Config{})
	if code, _ := post(t, h.addr, `{"producer":"a","pseq":1,"type":"t"}`); code != 200 {
		t.Fatal("first publish failed")
	}
	h.fs.failSync.Store(true)
	code, m := post(t, h.addr, `{"producer":"a","pseq":2,"type":"t"}`)
	if code != 503 || m["code"] != wire.CodeUnavailable || !strings.Contains(fmt.Sprint(m["error"]), "restart") {
		t.Fatalf("publish during sync failure: %d %v", code, m)
	}
	resp, err := http.Get("http://" + h.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !bytes.Contains(b, []byte("failed")) {
		t.Fatalf("readyz after sync failure: %d %s", resp.StatusCode, b)
	}
	// The disk "recovers", but the host must not ack until restarted.
	h.fs.failSync.Store(false)
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	publish(t, ws, wire.JSON, 1, "b", 1)
	if r := readReply(t, ws, wire.JSON); r.Type != wire.TypeError || r.Code != wire.CodeUnavailable {
		t.Fatalf("publish after failure: %+v", r)
	}
}

func TestGracefulShutdownAcksInFlightThenCloses1001(t *testing.T) {
	h := startHost(t, Config{})
	ws := mustDial(t, h.addr, wire.SubprotocolJSON)
	const n = 500
	for i := uint64(1); i <= n; i++ {
		publish(t, ws, wire.JSON, i, "g", i)
	}
	// Wait until the server has read them all, then shut down.
	deadline := time.Now().Add(10 * time.Second)
	for h.log.LastSeq() < n/2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	go h.stop()
	acked := 0
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("after %d acks: %v, want close 1001", acked, err)
			}
			break
		}
		var r wire.Reply
		wire.DecodeReply(wire.JSON, data, &r)
		if r.Type == wire.TypeAck {
			acked++
		}
	}
	if uint64(acked) != h.log.LastSeq() {
		t.Fatalf("%d acks received but %d events stored: an acked event is missing or a stored one went unacked before close", acked, h.log.LastSeq())
	}
	t.Logf("%d acks before close 1001", acked)
	if acked < n/2 {
		t.Fatalf("only %d acks", acked)
	}
}

func TestMetricsAndProbes(t *testing.T) {
	h := startHost(t, Config{})
	post(t, h.addr, `{"producer":"m","pseq":1,"type":"t"}`)
	for path, want := range map[string]string{
		"/livez":   "ok",
		"/readyz":  "ready",
		"/metrics": "nodb_events_accepted_total 1",
	} {
		resp, err := http.Get("http://" + h.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	for _, m := range []string{"nodb_commit_fsync_seconds_bucket", "nodb_ack_latency_seconds_bucket", "nodb_commit_batch_events_bucket", "nodb_websocket_connections", "nodb_events_duplicate_total"} {
		resp, _ := http.Get("http://" + h.addr + "/metrics")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestIdleConnectionsAreClosed: a connection that made a request and then
// sends nothing more is closed after idleTimeout. The server had no idle
// timeout, so anyone, without a token (GET /livez), could hold any number
// of connections open, each with its goroutine and buffers, for ever.
func TestIdleConnectionsAreClosed(t *testing.T) {
	defer func(d time.Duration) { idleTimeout = d }(idleTimeout)
	idleTimeout = 200 * time.Millisecond
	h := startHost(t, Config{})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /livez HTTP/1.1\r\nHost: nodb\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("an idle connection is still open after %v: read %v, want EOF", 5*time.Second, err)
	}
}

// TestCrossSiteWritesAreRefused: a web page of another origin can make a
// browser POST to the host (a form, or fetch in no-cors mode: the page
// cannot read the reply, but the request is made). In open mode (what
// make run serves on loopback) any page the developer opened could thus
// append events; with the plugin API registered, upload and activate
// plugins. Requests that change something, from a browser origin the host
// does not allow (the WebSocket's rule), are now refused with 403.
func TestCrossSiteWritesAreRefused(t *testing.T) {
	h := startHost(t, Config{AllowedOrigins: []string{"https://app.example"}})
	post := func(origin string, pseq int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+h.addr+"/v1/events",
			strings.NewReader(fmt.Sprintf(`{"producer":"p","pseq":%d,"type":"t"}`, pseq)))
		req.Header.Set("Content-Type", "text/plain")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := post("http://evil.example", 1); r.StatusCode != http.StatusForbidden {
		t.Fatalf("POST from another site: %d, want 403", r.StatusCode)
	}
	if n := h.log.LastSeq(); n != 0 {
		t.Fatalf("a refused cross-site POST appended %d events", n)
	}
	for i, origin := range []string{"", "http://" + h.addr, "https://app.example"} {
		if r := post(origin, i+1); r.StatusCode != http.StatusOK {
			t.Fatalf("POST with Origin %q: %d, want 200", origin, r.StatusCode)
		}
	}
}
