package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
)

// testHTTP bounds every request of the tests: a hang fails in 30 s with the
// server's goroutine dump instead of stalling the whole suite.
var testHTTP = &http.Client{Timeout: 30 * time.Second}

// todosWasm builds the example reducer once for the tests of this package.
func todosWasm(t *testing.T) string { return buildGuest(t, "todos", "./examples/todos/reducer") }

type viewStatus struct {
	Name     string `json:"name"`
	Seq      uint64 `json:"seq"`
	Status   string `json:"status"`
	Error    string `json:"error"`
	HaltedAt uint64 `json:"halted_at"`
	RootHash string `json:"root_hash"`
	Snapshot uint64 `json:"snapshot_seq"`
}

func views(t *testing.T, addr string) map[string]viewStatus {
	t.Helper()
	resp, err := testHTTP.Get("http://" + addr + "/v1/views")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Views []viewStatus }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	m := map[string]viewStatus{}
	for _, v := range out.Views {
		m[v.Name] = v
	}
	return m
}

func postEvent(t *testing.T, addr, producer string, pseq uint64, typ, payload string) {
	t.Helper()
	body := fmt.Sprintf(`{"producer":%q,"pseq":%d,"type":%q,"payload":%s}`, producer, pseq, typ, payload)
	resp, err := testHTTP.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish %s: %s", body, resp.Status)
	}
}

// TestHostileReducersAreContained runs the todos view beside reducers that
// loop forever and trap on their 1000th event: those halt with a clear
// error, the host stays up, todos keeps up with every event, and the log
// holds exactly what was published.
func TestHostileReducersAreContained(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	fixtures := "../../../plugins/testdata/"
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startServe(t, dir, addr,
		"--plugin", "todos="+todosWasm(t),
		"--plugin", "loop="+fixtures+"loop.wasm",
		"--plugin", "trap1000="+fixtures+"trap1000.wasm")
	const n = 1200
	for i := uint64(1); i <= n; i++ {
		postEvent(t, addr, "h", i, "todo/add", fmt.Sprintf(`{"id":"t%d","text":"x"}`, i))
	}
	deadline := time.Now().Add(60 * time.Second)
	var vs map[string]viewStatus
	for {
		vs = views(t, addr)
		if vs["todos"].Seq == n && vs["loop"].Status == "halted" && vs["trap1000"].Status == "halted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("views did not settle: %+v\n%s", vs, srv.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if vs["todos"].Status == "halted" {
		t.Fatalf("todos halted: %s", vs["todos"].Error)
	}
	if !strings.Contains(strings.ToLower(vs["loop"].Error), "time") {
		t.Errorf("loop's error does not say it timed out: %q", vs["loop"].Error)
	}
	if vs["trap1000"].Seq != vs["trap1000"].HaltedAt-1 || vs["trap1000"].Error == "" {
		t.Errorf("trap1000: %+v", vs["trap1000"])
	}
	t.Logf("loop: %s", vs["loop"].Error)
	t.Logf("trap1000 halted at seq %d: %s", vs["trap1000"].HaltedAt, vs["trap1000"].Error)
	// The host is still up and the log holds exactly the published events.
	if err := srv.term(); err != nil {
		t.Fatal(err)
	}
	if recs := logCat(t, dir); len(recs) != n {
		t.Fatalf("log holds %d events, want %d", len(recs), n)
	}
}

// TestEventTooLargeAfterCBORToJSON: a CBOR payload is stored as JSON, which
// can be several times longer (a string of control characters, "\u0001" for
// each byte). One such event within --max-frame but over the log's record
// limit must be refused on its own, and must not stop the host from
// acknowledging everyone else's events.
func TestEventTooLargeAfterCBORToJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startServe(t, dir, addr, "--max-frame", "1024")
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{wire.SubprotocolCBOR}}).Dial("ws://"+addr+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	publish := func(id uint64, payload any) wire.Reply {
		t.Helper()
		msg, err := cbor.Marshal(map[string]any{"type": "publish", "id": id,
			"event": map[string]any{"producer": "big", "pseq": id, "type": "t", "payload": payload}})
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) > 1024 {
			t.Fatalf("message of %d bytes is over --max-frame", len(msg))
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("publish %d: %v", id, err)
			}
			var rep wire.Reply
			if err := wire.DecodeReply(wire.CBOR, data, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.ID == id && (rep.Type == wire.TypeAck || rep.Type == wire.TypeError) {
				return rep
			}
		}
	}
	if rep := publish(1, strings.Repeat("\x01", 900)); rep.Type != wire.TypeError || rep.Code != wire.CodeTooLarge {
		t.Fatalf("publish of a payload whose JSON is %d bytes: %+v, want a too_large error", 900*6+2, rep)
	}
	if rep := publish(1, "small"); rep.Type != wire.TypeAck || rep.Seq != 1 {
		t.Fatalf("publish after the refused one: %+v, want an ack with seq 1", rep)
	}
	resp, err := testHTTP.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz: %s after a too-large event", resp.Status)
	}
	if err := srv.term(); err != nil {
		t.Fatal(err)
	}
	if recs := logCat(t, dir); len(recs) != 1 {
		t.Fatalf("log holds %d events, want 1", len(recs))
	}
}

// TestServeRefusesDotViewNames: --plugin ..=FILE named a view "..", whose
// snapshots went to DATA/snapshots/.. (the data directory itself), and whose
// start removed the data directory's ".tmp-*" files. Refused now, before
// anything is read.
func TestServeRefusesDotViewNames(t *testing.T) {
	for _, name := range []string{"..", "."} {
		_, stderr, code := run(t, "serve", "--data", t.TempDir(), "--addr", freeAddr(t), "--plugin", name+"=missing.wasm")
		if code != 1 || !strings.Contains(stderr, "may not be . or ..") {
			t.Errorf("--plugin %s=…: exit %d, %s", name, code, stderr)
		}
	}
}
