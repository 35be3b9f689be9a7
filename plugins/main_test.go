package plugins_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
)

// goFixtures are Go guests built by TestMain into a temporary directory:
// name -> package directory relative to this one.
var goFixtures = map[string]string{
	"todos": "../examples/todos/reducer",
	"panic": "testdata/go/panic",
	"chaos": "testdata/go/chaos",
	"noop":  "testdata/go/noop",
}

var (
	goBuildDir string
	cacheDir   string
	goBuildErr error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nodb-plugins-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goBuildDir = filepath.Join(dir, "wasm")
	cacheDir = filepath.Join(dir, "cache")
	var wg sync.WaitGroup
	var mu sync.Mutex
	for name, pkg := range goFixtures {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := gowasm.Build(context.Background(), "", "./"+pkg, filepath.Join(goBuildDir, name+".wasm")); err != nil {
				mu.Lock()
				goBuildErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return m.Run()
}

// fixture returns the bytes of a fixture: a Go guest built by TestMain, or a
// checked-in testdata/NAME.wasm built from testdata/NAME.wat.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join("testdata", name+".wasm")
	if _, ok := goFixtures[name]; ok {
		if goBuildErr != nil {
			t.Fatal(goBuildErr)
		}
		path = filepath.Join(goBuildDir, name+".wasm")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newRuntime creates a Runtime sharing the test binary's compilation cache.
func newRuntime(t testing.TB, cfg plugins.Config) *plugins.Runtime {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}})
	}
	r, err := plugins.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func compile(t testing.TB, r *plugins.Runtime, name string) *plugins.Module {
	t.Helper()
	m, err := r.Compile(context.Background(), fixture(t, name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

func instance(t testing.TB, m *plugins.Module, cfg plugins.InstanceConfig) *plugins.Instance {
	t.Helper()
	if cfg.View == "" {
		cfg.View = "test"
	}
	i, err := m.NewInstance(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = i.Close(context.Background()) })
	return i
}

func ev(seq uint64, typ, payload string) *plugins.Event {
	return &plugins.Event{Seq: seq, Time: int64(seq) * int64(time.Millisecond), Producer: "p", PSeq: seq, Type: typ, Payload: []byte(payload)}
}
