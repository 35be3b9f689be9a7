package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/auth"
	"github.com/nodb-dev/nodb/host/auth/authtest"
	"github.com/nodb-dev/nodb/host/view"
)

// tokens creates a token file with one token per name → scopes and returns
// its Authenticator, its path and the secrets by name.
func tokens(t *testing.T, grants map[string][]string) (*auth.Authenticator, string, map[string]string) {
	t.Helper()
	var gs []authtest.Grant
	for name, scopes := range grants {
		gs = append(gs, authtest.Grant{Name: name, Scopes: scopes})
	}
	return authtest.Tokens(t, gs...)
}

// addNamedView serves a "kv/set" view named name.
func addNamedView(t *testing.T, h *testHost, name string) *view.View {
	t.Helper()
	return addView(t, h, name, setReducer{})
}

type httpResult = authtest.Result

func do(t *testing.T, method, url, token, body string) httpResult {
	t.Helper()
	return authtest.Do(t, method, url, token, []byte(body))
}

// wantRefused checks a 401/403 with the JSON error body and the challenge.
func wantRefused(t *testing.T, what string, r httpResult, status int, contains string) {
	t.Helper()
	authtest.Refused(t, what, r, status, contains)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: no WWW-Authenticate: Bearer challenge (%v)", what, r.Header)
	}
}

func dialToken(t *testing.T, addr, header, query string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr := http.Header{}
	if header != "" {
		hdr.Set("Authorization", "Bearer "+header)
	}
	u := "ws://" + addr + "/v1/ws"
	if query != "" {
		u += "?access_token=" + query
	}
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(u, hdr)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
		if r := readReply(t, ws, wire.JSON); r.Type != wire.TypeHello {
			t.Fatalf("first message %+v", r)
		}
	}
	return ws, resp, err
}

func pubMsg(id uint64, producer string, pseq uint64, typ string) string {
	b, _ := json.Marshal(map[string]any{"type": "publish", "id": id, "event": map[string]any{
		"producer": producer, "pseq": pseq, "type": typ, "payload": map[string]any{"k": "a", "v": 1}}})
	return string(b)
}

func TestAuthRefusesMissingAndWrongTokens(t *testing.T) {
	a, _, secrets := tokens(t, map[string][]string{"ops": {"admin"}})
	h := startHost(t, Config{Auth: a})
	addNamedView(t, h, "todos")
	base := "http://" + h.addr
	wrong := secrets["ops"][:len(secrets["ops"])-4] + "AAAA"
	endpoints := []struct{ method, path, body string }{
		{"GET", "/v1/views", ""},
		{"GET", "/v1/views/todos", ""},
		{"GET", "/v1/views/todos/state", ""},
		{"POST", "/v1/events", `{"producer":"p","pseq":1,"type":"kv/set","payload":{"k":"a","v":1}}`},
		{"GET", "/v1/producers/p", ""},
		{"GET", "/metrics", ""},
		{"GET", "/v1/ws", ""},
	}
	for _, e := range endpoints {
		wantRefused(t, "no token "+e.path, do(t, e.method, base+e.path, "", e.body), 401, "requires a token")
		r := do(t, e.method, base+e.path, wrong, e.body)
		wantRefused(t, "wrong token "+e.path, r, 401, "unknown or revoked")
		if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("wrong token %s: challenge %q", e.path, r.Header.Get("WWW-Authenticate"))
		}
		wantRefused(t, "garbage token "+e.path, do(t, e.method, base+e.path, "letmein", e.body), 401, "not a nodb token")
	}
	// The WebSocket handshake is refused before the upgrade.
	for _, c := range []struct{ header, query string }{{"", ""}, {wrong, ""}, {"", wrong}} {
		_, resp, err := dialToken(t, h.addr, c.header, c.query)
		if err == nil || resp == nil || resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WebSocket with header %q query %q: %v %v", c.header, c.query, err, resp)
		}
	}
	// A token in the URL of a plain HTTP request is refused: URLs end up in logs.
	wantRefused(t, "access_token on HTTP", do(t, "GET", base+"/v1/views?access_token="+secrets["ops"], "", ""), 401, "only on WebSocket handshakes")
	// Health checks stay open.
	for _, p := range []string{"/livez", "/readyz"} {
		if r := do(t, "GET", base+p, "", ""); r.Status != 200 {
			t.Errorf("%s without a token: %d %s", p, r.Status, r.Body)
		}
	}
	if h.log.LastSeq() != 0 {
		t.Fatalf("refused requests appended %d events", h.log.LastSeq())
	}
}

func TestAuthThirdPartyToken(t *testing.T) {
	a, _, secrets := tokens(t, map[string][]string{
		"ops":       {"admin"},
		"stats-bot": {"read:todos", "deploy:cascade"},
		"todo-app":  {"publish:todo/", "read:todos"},
		"deployer":  {"deploy:cascade"},
	})
	h := startHost(t, Config{Auth: a})
	addNamedView(t, h, "todos")
	addNamedView(t, h, "kv")
	base := "http://" + h.addr
	admin, bot, app := secrets["ops"], secrets["stats-bot"], secrets["todo-app"]

	// Some history, published by the admin.
	if r := do(t, "POST", base+"/v1/events", admin, `{"producer":"seed","pseq":1,"type":"kv/set","payload":{"k":"a","v":1}}`); r.Status != 200 {
		t.Fatalf("admin publish: %d %s", r.Status, r.Body)
	}
	head := h.log.LastSeq()

	// HTTP: the third party may read its view and nothing else.
	wantRefused(t, "bot publishes", do(t, "POST", base+"/v1/events", bot, `{"producer":"bot","pseq":1,"type":"todo/add","payload":{}}`),
		403, `token "stats-bot" may not publish events of type "todo/add": it needs scope publish:todo/`)
	wantRefused(t, "bot reads kv", do(t, "GET", base+"/v1/views/kv/state", bot, ""), 403, `token "stats-bot" may not read view "kv": it needs scope read:kv`)
	wantRefused(t, "bot reads kv status", do(t, "GET", base+"/v1/views/kv", bot, ""), 403, "read:kv")
	wantRefused(t, "bot time-travels kv", do(t, "GET", base+"/v1/views/kv/state?at=1", bot, ""), 403, "read:kv")
	// A view that does not exist gets the same answer: no probing.
	wantRefused(t, "bot reads a missing view", do(t, "GET", base+"/v1/views/nope/state", bot, ""), 403, "read:nope")
	wantRefused(t, "bot reads raw records", do(t, "GET", base+"/v1/producers/seed", bot, ""), 403, "needs scope admin")
	wantRefused(t, "bot reads metrics", do(t, "GET", base+"/metrics", bot, ""), 403, "needs scope admin")
	if r := do(t, "GET", base+"/v1/views/todos/state", bot, ""); r.Status != 200 {
		t.Fatalf("bot reads todos: %d %s", r.Status, r.Body)
	}
	var list struct{ Views []view.Status }
	r := do(t, "GET", base+"/v1/views", bot, "")
	json.Unmarshal([]byte(r.Body), &list)
	if r.Status != 200 || len(list.Views) != 1 || list.Views[0].Name != "todos" {
		t.Fatalf("bot's view list: %d %s", r.Status, r.Body)
	}
	r = do(t, "GET", base+"/v1/views", admin, "")
	json.Unmarshal([]byte(r.Body), &list)
	if len(list.Views) != 2 {
		t.Fatalf("admin's view list: %s", r.Body)
	}

	// WebSocket, header and query parameter: publish refused per message,
	// subscribe refused per view, the connection goes on.
	for _, viaQuery := range []bool{false, true} {
		hdr, q := bot, ""
		if viaQuery {
			hdr, q = "", bot
		}
		ws, resp, err := dialToken(t, h.addr, hdr, q)
		if err != nil {
			t.Fatalf("bot WebSocket (query %v): %v %v", viaQuery, err, resp)
		}
		send(t, ws, pubMsg(7, "bot", 1, "todo/add"))
		if r := readReply(t, ws, wire.JSON); r.Type != wire.TypeError || r.ID != 7 || r.Code != wire.CodeForbidden ||
			!strings.Contains(r.Error, `may not publish events of type "todo/add"`) {
			t.Fatalf("bot WS publish: %+v", r)
		}
		send(t, ws, `{"type":"subscribe","id":8,"view":"kv"}`)
		if r := readReply(t, ws, wire.JSON); r.Type != wire.TypeError || r.ID != 8 || r.Code != wire.CodeForbidden || !strings.Contains(r.Error, "it needs scope read:kv") {
			t.Fatalf("bot WS subscribe kv: %+v", r)
		}
		send(t, ws, `{"type":"subscribe","id":9,"view":"todos"}`)
		if r := nextView(t, ws); r.Type != wire.TypeSnapshot || r.ID != 9 {
			t.Fatalf("bot WS subscribe todos: %+v", r)
		}
	}

	// A token that can neither publish nor read is refused at the handshake.
	if _, resp, err := dialToken(t, h.addr, secrets["deployer"], ""); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("deploy-only token WebSocket: %v %v", err, resp)
	} else if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), `"code":"forbidden"`) {
		t.Fatalf("deploy-only token WebSocket body: %s", b)
	}

	// Nothing was appended by any refused attempt.
	if got := h.log.LastSeq(); got != head {
		t.Fatalf("refused publishes moved the log from %d to %d", head, got)
	}

	// A prefix scope publishes what it covers, over HTTP and WebSocket.
	if r := do(t, "POST", base+"/v1/events", app, `{"producer":"app","pseq":1,"type":"todo/add","payload":{}}`); r.Status != 200 {
		t.Fatalf("todo-app publishes todo/add: %d %s", r.Status, r.Body)
	}
	wantRefused(t, "todo-app publishes kv/set", do(t, "POST", base+"/v1/events", app, `{"producer":"app","pseq":2,"type":"kv/set","payload":{}}`), 403, "publish:kv/")
	ws, _, err := dialToken(t, h.addr, app, "")
	if err != nil {
		t.Fatal(err)
	}
	send(t, ws, pubMsg(1, "app", 2, "todo/done"))
	if r := readReply(t, ws, wire.JSON); r.Type != wire.TypeAck || r.Seq != head+2 {
		t.Fatalf("todo-app WS publish: %+v", r)
	}
	send(t, ws, pubMsg(2, "app", 3, "nodb/swap"))
	if r := readReply(t, ws, wire.JSON); r.Type != wire.TypeError || r.Code != wire.CodeForbidden {
		t.Fatalf("todo-app publishes nodb/swap: %+v", r)
	}
	if got := h.log.LastSeq(); got != head+2 {
		t.Fatalf("log at %d, want %d", got, head+2)
	}

	// The admin may do everything.
	for _, p := range []string{"/v1/views/kv/state", "/v1/views/kv", "/v1/producers/seed", "/metrics", "/v1/views/todos/state?path=/a"} {
		if r := do(t, "GET", base+p, admin, ""); r.Status != 200 {
			t.Errorf("admin GET %s: %d %s", p, r.Status, r.Body)
		}
	}
	ws, _, err = dialToken(t, h.addr, admin, "")
	if err != nil {
		t.Fatal(err)
	}
	send(t, ws, pubMsg(1, "root", 1, "anything/at-all"))
	if r := readReply(t, ws, wire.JSON); r.Type != wire.TypeAck {
		t.Fatalf("admin WS publish: %+v", r)
	}
	send(t, ws, `{"type":"subscribe","id":2,"view":"kv"}`)
	if r := nextView(t, ws); r.Type != wire.TypeSnapshot {
		t.Fatalf("admin WS subscribe: %+v", r)
	}
}

func TestAuthHandleDefaults(t *testing.T) {
	a, _, secrets := tokens(t, map[string][]string{"ops": {"admin"}, "reader": {"read:*"}})
	h := startHost(t, Config{Auth: a})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	h.srv.Handle("GET /v1/extra", ok)
	h.srv.Handle("GET /static/", ok)
	h.srv.HandleAuthenticated("GET /v1/mine", ok)
	base := "http://" + h.addr
	wantRefused(t, "reader on an API extension", do(t, "GET", base+"/v1/extra", secrets["reader"], ""), 403, `may not use GET /v1/extra: it needs scope admin`)
	if r := do(t, "GET", base+"/v1/extra", secrets["ops"], ""); r.Status != 200 {
		t.Fatalf("admin on an API extension: %d", r.Status)
	}
	if r := do(t, "GET", base+"/static/app.js", "", ""); r.Status != 200 {
		t.Fatalf("static file without a token: %d", r.Status)
	}
	wantRefused(t, "authenticated endpoint without a token", do(t, "GET", base+"/v1/mine", "", ""), 401, "requires a token")
	if r := do(t, "GET", base+"/v1/mine", secrets["reader"], ""); r.Status != 200 {
		t.Fatalf("authenticated endpoint: %d", r.Status)
	}
}

// TestAuthRevokedTokenEndsWebSocket revokes a token while its WebSocket is
// open: the next message (or keepalive) closes it with 1008.
func TestAuthRevokedTokenEndsWebSocket(t *testing.T) {
	a, path, secrets := tokens(t, map[string][]string{"ops": {"admin"}, "app": {"publish", "read:*"}})
	h := startHost(t, Config{Auth: a, PingInterval: 100 * time.Millisecond})
	ws, _, err := dialToken(t, h.addr, secrets["app"], "")
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Update(path, func(f *auth.File) (err error) { _, err = f.Remove("app"); return }); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ce *websocket.CloseError
	for {
		_, _, err := ws.ReadMessage()
		if err != nil {
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "revoked") {
				t.Fatalf("got %v, want close 1008 (token revoked)", err)
			}
			break
		}
	}
	if _, resp, err := dialToken(t, h.addr, secrets["app"], ""); err == nil || resp.StatusCode != 401 {
		t.Fatalf("revoked token reconnects: %v", err)
	}
	if _, _, err := dialToken(t, h.addr, secrets["ops"], ""); err != nil {
		t.Fatalf("the other token stopped working: %v", err)
	}
}

// TestAuthNarrowedTokenEndsWebSocket takes a scope away from a token in the
// token file while its WebSocket follows the view that scope allowed. HTTP
// requests get the new scopes within a second; the WebSocket kept the
// scopes of its handshake and went on receiving the view's patches (and
// accepting subscribes to it) for as long as it stayed open. Now it is
// closed like a revoked token's, and the client reconnects with the
// token's current scopes.
func TestAuthNarrowedTokenEndsWebSocket(t *testing.T) {
	a, path, secrets := tokens(t, map[string][]string{"ops": {"admin"}, "app": {"read:kv", "read:secret"}})
	h := startHost(t, Config{Auth: a, PingInterval: 100 * time.Millisecond})
	addNamedView(t, h, "secret")
	ws, _, err := dialToken(t, h.addr, secrets["app"], "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// The server's pings and close frame may wait unread until it has
	// gone: answering them would then fail (broken pipe) and hide the code.
	ws.SetPingHandler(func(string) error { return nil })
	ws.SetCloseHandler(func(int, string) error { return nil })
	send(t, ws, `{"type":"subscribe","id":1,"view":"secret"}`)
	for {
		if r := readReply(t, ws, wire.JSON); r.Type == wire.TypeSnapshot {
			break
		}
	}
	err = auth.Update(path, func(f *auth.File) error {
		for i := range f.Tokens {
			if f.Tokens[i].Name == "app" {
				f.Tokens[i].Scopes = []string{"read:kv"}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(auth.ReloadCheckInterval + 100*time.Millisecond)
	if r := do(t, "GET", "http://"+h.addr+"/v1/views/secret/state", secrets["app"], ""); r.Status != 403 {
		t.Fatalf("HTTP read of secret after its scope was taken away: %d %s", r.Status, r.Body)
	}
	admin, _, err := dialToken(t, h.addr, secrets["ops"], "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	send(t, admin, `{"type":"publish","id":1,"event":{"producer":"w","pseq":1,"type":"kv/set","payload":{"k":"salary","v":1}}}`)
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("got %v, want close 1008", err)
			}
			return
		}
		if strings.Contains(string(data), "salary") {
			t.Fatalf("the WebSocket still receives view secret after the token lost read:secret: %s", data)
		}
	}
}
