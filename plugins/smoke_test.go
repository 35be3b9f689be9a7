package plugins_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/plugins"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

func TestTodosSmoke(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	t0 := time.Now()
	m := compile(t, r, "todos")
	t.Logf("compile: %v", time.Since(t0))
	info := m.Info()
	t.Logf("info: %+v", info)
	t0 = time.Now()
	i := instance(t, m, plugins.InstanceConfig{})
	t.Logf("instantiate: %v", time.Since(t0))
	st := nodb.NewMemStore()
	for n, e := range []*plugins.Event{ev(1, "todo/add", `{"id":"a","text":"milk"}`), ev(2, "todo/toggle", `{"id":"a"}`)} {
		if err := i.Reduce(context.Background(), e, st); err != nil {
			t.Fatal(n, err)
		}
	}
	if got, want := st.JSON(), `{"todos":{"a":{"done":true,"text":"milk"}}}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

// TestFrameSizes: frames are built in the guest's buffer when they fit and
// moved to a larger one when they do not, in any order of sizes, with a
// payload that fails to convert in between (an error, nothing reduced).
func TestFrameSizes(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "todos"), plugins.InstanceConfig{})
	st := nodb.NewMemStore()
	long := strings.Repeat("x", 100_000)
	for n, c := range []struct{ typ, payload, text string }{
		{"todo/add", `{"id":"a","text":"milk"}`, "milk"},
		{"todo/rename", `{"id":"a","text":"` + long + `"}`, long},
		{"todo/rename", `{"id":"a","text":"m"}`, "m"},
		{"todo/rename", `{"id":"a","text":"` + long + long + `"}`, long + long},
		{"todo/rename", `{"id":"a","text":"bad"`, ""},
		{"todo/rename", `{"id":"a","text":"` + long[:500] + `"}`, long[:500]},
		{"todo/rename", `{"id":"a","text":"eggs"}`, "eggs"},
	} {
		err := i.Reduce(context.Background(), ev(uint64(n+1), c.typ, c.payload), st)
		if c.text == "" {
			if err == nil {
				t.Fatalf("%d: invalid payload accepted", n)
			}
			continue
		}
		if err != nil {
			t.Fatal(n, err)
		}
		if got, want := st.JSON(), `{"todos":{"a":{"done":false,"text":"`+c.text+`"}}}`; got != want {
			t.Fatalf("%d: got %.80s want %.80s", n, got, want)
		}
	}
}

// TestModuleConsumes: Module.Consumes answers as Info().ConsumesType does.
func TestModuleConsumes(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	for _, name := range []string{"todos", "noop", "loop"} {
		m := compile(t, r, name)
		info := m.Info()
		for _, typ := range []string{"todo/add", "todo/toggle", "todo/clear-completed", "x", "", "todo/adD"} {
			if got, want := m.Consumes(typ), info.ConsumesType(typ); got != want {
				t.Errorf("%s: Consumes(%q) = %v, Info says %v", name, typ, got, want)
			}
		}
	}
}

// TestInstancesOutliveTheirModule: an instance made before its Module was
// closed goes on reducing across epoch boundaries, where it instantiates
// the module's compiled code again (closing the code at once broke that:
// "source module must be compiled before instantiation"), while no new
// instance can be made. host/deploy closes a version's Module as soon as
// no view or activation holds it.
func TestInstancesOutliveTheirModule(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	m := compile(t, r, "noop")
	i := instance(t, m, plugins.InstanceConfig{})
	st := nodb.NewMemStore()
	if err := i.Reduce(context.Background(), ev(1, "todo/toggle", `{"id":"a"}`), st); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.NewInstance(context.Background(), plugins.InstanceConfig{View: "late"}); err == nil || !strings.Contains(err.Error(), "the module was closed") {
		t.Fatalf("a new instance of a closed module: %v", err)
	}
	for e := uint64(1); e <= 3; e++ {
		seq := e*abi.EpochSize + 1 // the first of epoch e: a new guest
		if err := i.Reduce(context.Background(), ev(seq, "todo/toggle", `{"id":"a"}`), st); err != nil {
			t.Fatalf("seq %d, after the module was closed: %v", seq, err)
		}
	}
	if err := i.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
