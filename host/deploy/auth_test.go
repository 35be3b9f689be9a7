package deploy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/auth"
	"github.com/nodb-dev/nodb/host/auth/authtest"
	"github.com/nodb-dev/nodb/host/chronicler"
	"github.com/nodb-dev/nodb/host/deploy"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
	"github.com/nodb-dev/nodb/host/server"
	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
	"github.com/nodb-dev/nodb/plugins/store"
)

// host is a real server with the plugin API on a real listener.
type host struct {
	base  string
	log   *filelog.Log
	store *store.Store
	mgr   *deploy.Manager
	chron *chronicler.Chronicler
}

func startHost(t *testing.T, a *auth.Authenticator) *host {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := filelog.Open(filelog.DefaultConfig(filepath.Join(dir, "log")))
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Auth: a})
	chron, err := chronicler.New(ctx, lg, chronicler.Config{Metrics: srv.ChronMetrics})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := plugins.NewRuntime(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "plugins"), rt, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	mgr := deploy.New(deploy.Config{Store: st, Runtime: rt, Log: lg, DataDir: dir, SnapshotEvery: 1000,
		AddView: srv.AddView, ViewExists: srv.HasView})
	mgr.Register(srv)
	srv.SetChronicler(chron)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ctx, l); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		mgr.Stop()
		rt.Close(context.Background())
		chron.Close()
		lg.Close()
	})
	for i := 1; i <= 3; i++ {
		ev := wire.Event{Producer: "seed", PSeq: uint64(i), Type: "todo/add", Payload: []byte(`{}`)}
		if _, err := chron.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	return &host{base: "http://" + l.Addr().String(), log: lg, store: st, mgr: mgr, chron: chron}
}

type result = authtest.Result

func call(t *testing.T, method, url, token string, body []byte, hdr ...string) result {
	t.Helper()
	return authtest.Do(t, method, url, token, body, hdr...)
}

func refused(t *testing.T, what string, r result, status int, contains string) {
	t.Helper()
	authtest.Refused(t, what, r, status, contains)
}

func manifest(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func upload(t *testing.T, h *host, token string, wasm []byte, man map[string]any) result {
	t.Helper()
	return call(t, "POST", h.base+"/v1/plugins", token, wasm, "Content-Type", "application/wasm", deploy.ManifestHeader, manifest(man))
}

// plantCascade stores a version with kind "cascade" directly in the store's
// directory (this host has no cascade engine to validate one), so the
// activation rules for cascades can be exercised.
func plantCascade(t *testing.T, h *host, wasm []byte, name string, inputs []string, limits store.Limits) string {
	t.Helper()
	sum := sha256.Sum256(wasm)
	sha := hex.EncodeToString(sum[:])
	m := store.Manifest{Name: name, Version: "c1", Kind: auth.KindCascade, Inputs: inputs, ABIVersion: 1, SHA256: sha,
		Size: len(wasm), Limits: limits, SwapPolicy: store.PolicyAlways, UploadedAt: time.Now().UTC()}
	mj, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(h.store.Dir(), sha+".wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.store.Dir(), sha+".json"), mj, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha
}

// goWasm builds a Go guest (a package path relative to the repository's
// root) once per test binary.
func goWasm(t *testing.T, name, pkg string) []byte {
	t.Helper()
	b, err := gowasm.Module(context.Background(), filepath.Join("..", ".."), pkg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "plugins", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// state is what refused requests must leave unchanged: the log's head, the
// plugin list and the active versions.
func state(t *testing.T, h *host, admin string) string {
	t.Helper()
	r := call(t, "GET", h.base+"/v1/plugins", admin, nil)
	if r.Status != 200 {
		t.Fatalf("admin list: %d %s", r.Status, r.Body)
	}
	return r.Body + "\nhead " + strconv.FormatUint(h.log.LastSeq(), 10)
}

func TestPluginAPIAuthorisation(t *testing.T) {
	a, _, secrets := authtest.Tokens(t,
		authtest.Grant{Name: "ops", Scopes: []string{"admin"}},
		authtest.Grant{Name: "stats-bot", Scopes: []string{"read:todos", "deploy:cascade"}, Limits: auth.Limits{MemoryPages: 64, EventTimeoutMS: 500}},
		authtest.Grant{Name: "reader", Scopes: []string{"read:*"}})
	h := startHost(t, a)
	admin, bot, reader := secrets["ops"], secrets["stats-bot"], secrets["reader"]
	reducer := fixture(t, "trap1000.wasm")
	stats := goWasm(t, "stats", "./examples/todos/stats")             // a cascade over todos
	payroll := goWasm(t, "payroll", "./host/deploy/testdata/payroll") // over todos and payroll

	// The admin deploys a reducer view "todos".
	r := upload(t, h, admin, reducer, map[string]any{"name": "todos", "version": "1"})
	if r.Status != 201 {
		t.Fatalf("admin upload: %d %s", r.Status, r.Body)
	}
	r = call(t, "POST", h.base+"/v1/views/todos/activate", admin, []byte(`{"version":"1"}`))
	if r.Status != 200 || !strings.Contains(r.Body, `"outcome":"started"`) {
		t.Fatalf("admin activate: %d %s", r.Status, r.Body)
	}
	cascade := plantCascade(t, h, fixture(t, "loop.wasm"), "stats", []string{"todos"}, store.Limits{MemoryPages: 16, EventTimeoutMS: 100})
	foreign := plantCascade(t, h, fixture(t, "recurse.wasm"), "payroll-stats", []string{"payroll"}, store.Limits{MemoryPages: 16, EventTimeoutMS: 100})
	unlimited := plantCascade(t, h, fixture(t, "badbuf.wasm"), "big", []string{"todos"}, store.Limits{})
	before := state(t, h, admin)

	// No token, a wrong token: 401 everywhere.
	for _, tok := range []string{"", bot[:len(bot)-2] + "xx"} {
		for _, e := range []struct{ method, path string }{
			{"POST", "/v1/plugins"}, {"GET", "/v1/plugins"}, {"DELETE", "/v1/plugins/" + cascade},
			{"POST", "/v1/views/todos/activate"}, {"POST", "/v1/views/todos/confirm"},
			{"POST", "/v1/views/todos/rollback"}, {"POST", "/v1/views/todos/dry-run"},
		} {
			r := call(t, e.method, h.base+e.path, tok, []byte(`{"version":"1"}`))
			if r.Status != 401 || r.Err.Code != wire.CodeUnauthorized {
				t.Errorf("%s %s with token %q: %d %s", e.method, e.path, tok, r.Status, r.Body)
			}
		}
	}

	// The third party: no reducers, no cascades over views it may not
	// read, nothing over its limits, never over a reducer view.
	refused(t, "bot uploads a reducer", upload(t, h, bot, reducer, map[string]any{"name": "evil"}),
		403, `token "stats-bot" may not upload a plugin of kind "reducer"`)
	refused(t, "bot uploads an explicit reducer", upload(t, h, bot, reducer, map[string]any{"name": "evil", "kind": "reducer"}), 403, "needs scope admin")
	refused(t, "bot uploads a cascade over payroll", upload(t, h, bot, payroll, map[string]any{"name": "s"}),
		403, `may not deploy a cascade over view "payroll": it needs scope read:payroll`)
	refused(t, "bot asks for more memory", upload(t, h, bot, stats, map[string]any{"name": "s", "limits": map[string]any{"memory_pages": 65}}),
		403, "limits.memory_pages 65: the token's limit is memory_pages 64")
	refused(t, "bot asks for more time", upload(t, h, bot, stats, map[string]any{"name": "s", "limits": map[string]any{"event_timeout_ms": 501}}),
		403, "event_timeout_ms 501")
	refused(t, "bot points a cascade at another host", upload(t, h, bot, stats, map[string]any{"name": "s", "upstreams": map[string]string{"todos": "ws://10.0.0.1:7070"}}),
		403, "point a cascade at another host")
	// A manifest cannot make a reducer pass for a cascade: kind and inputs
	// are what the module declares.
	if r := upload(t, h, bot, reducer, map[string]any{"name": "s", "kind": "cascade", "inputs": []string{"todos"}}); r.Status != 422 || !strings.Contains(r.Body, "which makes it a reducer") {
		t.Errorf("bot uploads a reducer labelled cascade: %d %s", r.Status, r.Body)
	}
	refused(t, "bot activates a reducer", call(t, "POST", h.base+"/v1/views/todos/activate", bot, []byte(`{"version":"1"}`)), 403, `kind "reducer"`)
	refused(t, "bot activates a cascade over the reducer view", call(t, "POST", h.base+"/v1/views/todos/activate", bot, []byte(`{"sha256":"`+cascade+`"}`)),
		403, `view "todos": that view exists and is a reducer view`)
	refused(t, "bot activates a cascade over payroll", call(t, "POST", h.base+"/v1/views/stats/activate", bot, []byte(`{"sha256":"`+foreign+`"}`)), 403, "read:payroll")
	refused(t, "bot activates an unlimited cascade", call(t, "POST", h.base+"/v1/views/big/activate", bot, []byte(`{"sha256":"`+unlimited+`"}`)), 403, "the host's maximum")
	refused(t, "bot rolls back the reducer view", call(t, "POST", h.base+"/v1/views/todos/rollback", bot, nil), 403, `roll back view "todos": it is not a cascade view`)
	refused(t, "bot confirms on the reducer view", call(t, "POST", h.base+"/v1/views/todos/confirm", bot, nil), 403, "not a cascade view")
	refused(t, "bot dry-runs", call(t, "POST", h.base+"/v1/views/todos/dry-run", bot, reducer), 403, "needs scope admin")
	refused(t, "bot deletes", call(t, "DELETE", h.base+"/v1/plugins/"+cascade, bot, nil), 403, "needs scope admin")
	refused(t, "reader lists plugins", call(t, "GET", h.base+"/v1/plugins", reader, nil), 403, "deploy:cascade")
	refused(t, "reader uploads", upload(t, h, reader, reducer, map[string]any{"name": "x", "kind": "cascade", "inputs": []string{"todos"}}), 403, "deploy:cascade")
	refused(t, "reader activates", call(t, "POST", h.base+"/v1/views/stats/activate", reader, []byte(`{"sha256":"`+cascade+`"}`)), 403, "needs scope admin")

	// The third party sees the cascades over views it may read, only.
	r = call(t, "GET", h.base+"/v1/plugins", bot, nil)
	var list struct {
		Plugins []store.Manifest `json:"plugins"`
		Active  []store.Active   `json:"active"`
	}
	json.Unmarshal([]byte(r.Body), &list)
	if r.Status != 200 || len(list.Plugins) != 2 || len(list.Active) != 0 {
		t.Fatalf("bot's plugin list: %d %s", r.Status, r.Body)
	}
	for _, m := range list.Plugins {
		if m.Kind != auth.KindCascade || m.SHA256 == foreign {
			t.Fatalf("bot sees %+v", m)
		}
	}

	if after := state(t, h, admin); after != before {
		t.Fatalf("refused requests changed the host:\nbefore %s\nafter  %s", before, after)
	}

	// A cascade within the rules: uploaded with the token's limits filled
	// in, activated in a new view, running.
	r = upload(t, h, bot, stats, map[string]any{"name": "todo-stats"})
	var up struct {
		Manifest store.Manifest `json:"manifest"`
	}
	json.Unmarshal([]byte(r.Body), &up)
	if r.Status != 201 || up.Manifest.Kind != "cascade" || up.Manifest.Limits.MemoryPages != 64 || up.Manifest.Limits.EventTimeoutMS != 500 {
		t.Fatalf("allowed cascade upload: %d %s", r.Status, r.Body)
	}
	r = call(t, "POST", h.base+"/v1/views/todo-stats/activate", bot, []byte(`{"sha256":"`+up.Manifest.SHA256+`"}`))
	if r.Status != 200 || !strings.Contains(r.Body, `"outcome":"started"`) {
		t.Fatalf("bot activates its cascade: %d %s", r.Status, r.Body)
	}
	if r := call(t, "GET", h.base+"/v1/views/todo-stats/state", admin, nil); r.Status != 200 {
		t.Fatalf("the cascade's state: %d %s", r.Status, r.Body)
	}
	refused(t, "bot reads its cascade without read:todo-stats", call(t, "GET", h.base+"/v1/views/todo-stats/state", bot, nil), 403, "read:todo-stats")

	// The admin may do everything.
	r = call(t, "POST", h.base+"/v1/views/todos/dry-run", admin, reducer)
	if r.Status != 200 || !strings.Contains(r.Body, `"identical":true`) {
		t.Fatalf("admin dry-run: %d %s", r.Status, r.Body)
	}
	r = call(t, "DELETE", h.base+"/v1/plugins/"+foreign, admin, nil)
	if r.Status != 200 {
		t.Fatalf("admin delete: %d %s", r.Status, r.Body)
	}
	r = call(t, "GET", h.base+"/v1/plugins", admin, nil)
	json.Unmarshal([]byte(r.Body), &list)
	if len(list.Plugins) != 4 || len(list.Active) != 2 {
		t.Fatalf("admin list: %s", r.Body)
	}
}
