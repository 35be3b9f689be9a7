package auth

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/abi/wire"
)

func principal(t *testing.T, name string, limits Limits, scopes ...string) *Principal {
	t.Helper()
	p, err := NewPrincipal("id-"+name, name, scopes, limits)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wantForbidden checks err is a 403 whose message contains each of want.
func wantForbidden(t *testing.T, err error, want ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a 403 *Error", err)
	}
	if e.Status != http.StatusForbidden || e.Code != wire.CodeForbidden {
		t.Fatalf("status %d code %q, want 403 forbidden (%s)", e.Status, e.Code, e.Message)
	}
	for _, w := range want {
		if !strings.Contains(e.Message, w) {
			t.Errorf("message %q does not contain %q", e.Message, w)
		}
	}
}

func TestValidateScope(t *testing.T) {
	for _, s := range []string{"admin", "publish", "publish:todo/", "publish:x", "read:todos", "read:*", "deploy:cascade", "read:a.b-c_d"} {
		if err := ValidateScope(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for s, want := range map[string]string{
		"":               "unknown",
		"root":           "unknown",
		"read":           "names no view",
		"read:":          "names no view",
		"publish:":       "empty prefix",
		"deploy:reducer": "reducers need admin",
		"deploy":         "reducers need admin",
		"read:to dos":    "space",
		"publish:\x01":   "control",
		"Admin":          "unknown",
	} {
		err := ValidateScope(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", s, err, want)
		}
	}
	if _, err := NewPrincipal("i", "n", []string{"read:todos", "bogus"}, Limits{}); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Fatalf("NewPrincipal with a bad scope: %v", err)
	}
}

func TestScopeMatching(t *testing.T) {
	admin := principal(t, "root", Limits{}, "admin")
	pubAll := principal(t, "writer", Limits{}, "publish")
	todo := principal(t, "todo-app", Limits{}, "publish:todo/", "read:todos")
	readAll := principal(t, "dash", Limits{}, "read:*")
	none := principal(t, "deployer", Limits{}, "deploy:cascade")

	pub := []struct {
		p    *Principal
		typ  string
		want bool
	}{
		{admin, "anything", true},
		{pubAll, "todo/add", true},
		{pubAll, "nodb/swap", true},
		{todo, "todo/add", true},
		{todo, "todo/", true},
		{todo, "todo", false},      // the prefix is "todo/"
		{todo, "todos/add", false}, // not a prefix match
		{todo, "xtodo/add", false}, // prefix, not substring
		{todo, "TODO/add", false},  // case-sensitive
		{readAll, "todo/add", false},
		{none, "todo/add", false},
	}
	for _, c := range pub {
		if got := c.p.CanPublish(c.typ); got != c.want {
			t.Errorf("%s CanPublish(%q) = %v, want %v", c.p.Name, c.typ, got, c.want)
		}
		err := c.p.CheckPublish(c.typ)
		if (err == nil) != c.want {
			t.Errorf("%s CheckPublish(%q) = %v", c.p.Name, c.typ, err)
		}
	}
	wantForbidden(t, todo.CheckPublish("chat/post"), `token "todo-app" may not publish events of type "chat/post"`, "it needs scope publish:chat/")
	wantForbidden(t, none.CheckPublish("plain"), "publish:plain")

	read := []struct {
		p    *Principal
		view string
		want bool
	}{
		{admin, "todos", true},
		{readAll, "todos", true},
		{readAll, "anything", true},
		{todo, "todos", true},
		{todo, "todos2", false},
		{todo, "*", false},
		{pubAll, "todos", false},
		{none, "todos", false},
	}
	for _, c := range read {
		if got := c.p.CanRead(c.view); got != c.want {
			t.Errorf("%s CanRead(%q) = %v, want %v", c.p.Name, c.view, got, c.want)
		}
	}
	wantForbidden(t, todo.CheckRead("stats"), `token "todo-app" may not read view "stats": it needs scope read:stats`)

	for _, p := range []*Principal{admin, pubAll, todo, readAll} {
		if err := p.CheckWebSocket(); err != nil {
			t.Errorf("%s may not use a WebSocket: %v", p.Name, err)
		}
	}
	wantForbidden(t, none.CheckWebSocket(), "open a WebSocket")

	if !admin.Admin() || todo.Admin() {
		t.Fatal("Admin()")
	}
	if err := admin.CheckAdmin("read raw events"); err != nil {
		t.Fatal(err)
	}
	wantForbidden(t, readAll.CheckAdmin("read raw events"), `token "dash" may not read raw events: it needs scope admin`)
	if !OpenPrincipal().Admin() {
		t.Fatal("the open-mode principal is not an admin")
	}
}

func TestCascadeDeployDecisions(t *testing.T) {
	admin := principal(t, "root", Limits{}, "admin")
	third := principal(t, "stats-bot", Limits{}, "read:todos", "read:users", "deploy:cascade")
	reader := principal(t, "reader", Limits{}, "read:*")
	wide := principal(t, "wide", Limits{}, "read:*", "deploy:cascade")

	if err := admin.CanDeployCascade(nil); err != nil {
		t.Fatal(err)
	}
	if err := third.CanDeployCascade([]string{"todos", "users"}); err != nil {
		t.Fatal(err)
	}
	if err := wide.CanDeployCascade([]string{"anything"}); err != nil {
		t.Fatal(err)
	}
	wantForbidden(t, third.CanDeployCascade([]string{"todos", "payroll"}), `may not deploy a cascade over view "payroll": it needs scope read:payroll`)
	wantForbidden(t, third.CanDeployCascade(nil), "without inputs")
	wantForbidden(t, reader.CanDeployCascade([]string{"todos"}), "it needs scope deploy:cascade")

	// Uploads.
	if _, err := admin.AuthorizeUpload("", nil, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := third.AuthorizeUpload(KindCascade, []string{"todos"}, Limits{}); err != nil {
		t.Fatal(err)
	}
	wantForbidden(t, errOf(third.AuthorizeUpload("", []string{"todos"}, Limits{})), `kind "reducer"`, "needs scope admin")
	wantForbidden(t, errOf(third.AuthorizeUpload(KindReducer, nil, Limits{})), "needs scope admin")
	wantForbidden(t, errOf(third.AuthorizeUpload(KindCascade, []string{"payroll"}, Limits{})), "read:payroll")
	wantForbidden(t, errOf(reader.AuthorizeUpload(KindCascade, []string{"todos"}, Limits{})), "it needs scope deploy:cascade")
	wantForbidden(t, errOf(reader.AuthorizeUpload("", nil, Limits{})), "may not upload plugins")

	// Activation.
	c := Activation{Action: "activate", View: "stats", Kind: KindCascade, Inputs: []string{"todos"}}
	if err := third.AuthorizeActivate(c); err != nil {
		t.Fatalf("new cascade view: %v", err)
	}
	over := c
	over.ViewExists, over.ViewKind = true, KindCascade
	if err := third.AuthorizeActivate(over); err != nil {
		t.Fatalf("replacing a cascade: %v", err)
	}
	onReducer := c
	onReducer.View, onReducer.ViewExists, onReducer.ViewKind = "todos", true, KindReducer
	wantForbidden(t, third.AuthorizeActivate(onReducer), `view "todos": that view exists and is a reducer view`, "needs scope admin")
	unknown := onReducer
	unknown.ViewKind = ""
	wantForbidden(t, third.AuthorizeActivate(unknown), "not a cascade view")
	reducerVersion := c
	reducerVersion.Kind = ""
	wantForbidden(t, third.AuthorizeActivate(reducerVersion), `kind "reducer"`)
	foreign := c
	foreign.Inputs = []string{"payroll"}
	wantForbidden(t, third.AuthorizeActivate(foreign), "read:payroll")
	rb := onReducer
	rb.Action = "roll back"
	wantForbidden(t, third.AuthorizeActivate(rb), "may not roll back")
	wantForbidden(t, reader.AuthorizeActivate(c), "needs scope admin")
	for _, a := range []Activation{c, over, onReducer, unknown, reducerVersion, foreign} {
		if err := admin.AuthorizeActivate(a); err != nil {
			t.Fatalf("admin: %v", err)
		}
	}

	if err := third.CheckListPlugins(); err != nil {
		t.Fatal(err)
	}
	wantForbidden(t, reader.CheckListPlugins(), "deploy:cascade")
}

func errOf(_ Limits, err error) error { return err }

func TestLimits(t *testing.T) {
	small := principal(t, "small", Limits{MemoryPages: 64, EventTimeoutMS: 200}, "read:todos", "deploy:cascade")
	free := principal(t, "free", Limits{}, "read:todos", "deploy:cascade")
	admin := principal(t, "root", Limits{MemoryPages: 1}, "admin")

	got, err := small.CheckLimits(Limits{})
	if err != nil || got != (Limits{64, 200}) {
		t.Fatalf("filled in: %+v %v", got, err)
	}
	got, err = small.CheckLimits(Limits{MemoryPages: 32})
	if err != nil || got != (Limits{32, 200}) {
		t.Fatalf("smaller memory: %+v %v", got, err)
	}
	got, err = small.CheckLimits(Limits{MemoryPages: 64, EventTimeoutMS: 200})
	if err != nil || got != (Limits{64, 200}) {
		t.Fatalf("exactly the limits: %+v %v", got, err)
	}
	_, err = small.CheckLimits(Limits{MemoryPages: 65})
	wantForbidden(t, err, "limits.memory_pages 65", "memory_pages 64")
	_, err = small.CheckLimits(Limits{EventTimeoutMS: 5000})
	wantForbidden(t, err, "limits.event_timeout_ms 5000", "event_timeout_ms 200")
	if got, err := free.CheckLimits(Limits{MemoryPages: 4096}); err != nil || got.MemoryPages != 4096 {
		t.Fatalf("a token without limits: %+v %v", got, err)
	}
	if got, err := admin.CheckLimits(Limits{MemoryPages: 4096}); err != nil || got.MemoryPages != 4096 {
		t.Fatalf("admin: %+v %v", got, err)
	}

	// Uploads fill in and check the limits too.
	got, err = small.AuthorizeUpload(KindCascade, []string{"todos"}, Limits{})
	if err != nil || got != (Limits{64, 200}) {
		t.Fatalf("upload: %+v %v", got, err)
	}
	_, err = small.AuthorizeUpload(KindCascade, []string{"todos"}, Limits{MemoryPages: 128})
	wantForbidden(t, err, "memory_pages 128")

	// A stored version activated by a limited token must be within its
	// limits; zero there means the host's maximum, which is over them.
	a := Activation{View: "stats", Kind: KindCascade, Inputs: []string{"todos"}, Limits: Limits{MemoryPages: 64, EventTimeoutMS: 100}}
	if err := small.AuthorizeActivate(a); err != nil {
		t.Fatal(err)
	}
	a.Limits = Limits{}
	wantForbidden(t, small.AuthorizeActivate(a), "memory_pages 0 (the host's maximum)")
	a.Limits = Limits{MemoryPages: 10, EventTimeoutMS: 10000}
	wantForbidden(t, small.AuthorizeActivate(a), "event_timeout_ms 10000")
	if err := free.AuthorizeActivate(Activation{View: "stats", Kind: KindCascade, Inputs: []string{"todos"}}); err != nil {
		t.Fatal(err)
	}
}
