package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/server"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/plugins"
)

func validatePlugins(specs []string) error {
	seen := map[string]bool{}
	for _, s := range specs {
		name, file, ok := strings.Cut(s, "=")
		if !ok || name == "" || file == "" {
			return fmt.Errorf("--plugin %q: want NAME=FILE.wasm, e.g. --plugin todos=examples/todos/todos.wasm", s)
		}
		if seen[name] {
			return fmt.Errorf("--plugin: view %q given twice", name)
		}
		seen[name] = true
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return fmt.Errorf("--plugin: view name %q may hold only letters, digits, '-', '_' and '.'", name)
			}
		}
	}
	return nil
}

// runningViews are the views of a host and the goroutines applying the log.
type runningViews struct {
	rt     *plugins.Runtime
	cancel context.CancelFunc
	wg     sync.WaitGroup
	views  []*view.View
}

// startViews compiles each --plugin, builds its view (loading a snapshot)
// and starts applying the log to it.
func startViews(ctx context.Context, o *serveOptions, log eventlog.Log, srv *server.Server, logger hclog.Logger) (*runningViews, error) {
	rv := &runningViews{}
	if len(o.plugins) == 0 {
		rv.cancel = func() {}
		return rv, nil
	}
	rt, err := plugins.NewRuntime(ctx, plugins.Config{
		CacheDir: filepath.Join(o.data, "cache", "wazero"),
		Logger:   logger.Named("plugins"),
	})
	if err != nil {
		return nil, err
	}
	rv.rt = rt
	vctx, cancel := context.WithCancel(context.Background())
	rv.cancel = cancel
	for _, spec := range o.plugins {
		name, file, _ := strings.Cut(spec, "=")
		wasm, err := os.ReadFile(file)
		if err != nil {
			rv.stop()
			return nil, fmt.Errorf("--plugin %s: %w", spec, err)
		}
		mod, err := rt.Compile(ctx, wasm)
		if err != nil {
			rv.stop()
			return nil, fmt.Errorf("--plugin %s: %w", spec, err)
		}
		red, err := view.NewWasmReducer(ctx, mod, name, plugins.InstanceConfig{})
		if err != nil {
			rv.stop()
			return nil, fmt.Errorf("--plugin %s: %w", spec, err)
		}
		v, err := view.New(view.Config{
			Name:          name,
			Reducer:       red,
			Log:           log,
			SnapshotDir:   filepath.Join(o.data, "snapshots"),
			SnapshotEvery: o.snapEvery,
			Logger:        logger.Named("view." + name),
		})
		if err != nil {
			red.Close()
			rv.stop()
			return nil, err
		}
		rv.views = append(rv.views, v)
		srv.AddView(v)
		rv.wg.Add(1)
		go func() {
			defer rv.wg.Done()
			if err := v.Run(vctx); err != nil {
				logger.Error("view stopped", "view", name, "error", err)
			}
		}()
		logger.Info("view started", "view", name, "plugin", red.Hash()[:16], "from_seq", v.Status().Seq)
	}
	return rv, nil
}

func (rv *runningViews) stop() {
	rv.cancel()
	rv.wg.Wait()
	for _, v := range rv.views {
		// Leave the newest epoch-aligned state on disk for a fast restart.
		if _, err := v.Snapshot(); err != nil {
			v.FlushSnapshots()
		}
	}
	if rv.rt != nil {
		rv.rt.Close(context.Background())
	}
}
