package plugins_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
