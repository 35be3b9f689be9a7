package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/chronicler"
	"github.com/nodb-dev/nodb/host/deploy"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/server"
	"github.com/nodb-dev/nodb/plugins"
	"github.com/nodb-dev/nodb/plugins/store"
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

// runningViews are the views of a host, run by the deploy manager.
type runningViews struct {
	rt  *plugins.Runtime
	mgr *deploy.Manager
}

// startViews opens the plugin store (DATA/plugins), stores each --plugin
// there, starts every view with its active version (the --plugin file, or a
// version deployed since with the same command line) and registers the
// plugin API.
func startViews(ctx context.Context, o *serveOptions, log eventlog.Log, chron *chronicler.Chronicler, srv *server.Server, logger hclog.Logger) (*runningViews, error) {
	rt, err := plugins.NewRuntime(ctx, plugins.Config{
		CacheDir: filepath.Join(o.data, "cache", "wazero"),
		Logger:   logger.Named("plugins"),
	})
	if err != nil {
		return nil, err
	}
	rv := &runningViews{rt: rt}
	st, err := store.Open(filepath.Join(o.data, "plugins"), rt, 0)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	rv.mgr = deploy.New(deploy.Config{
		Store: st, Runtime: rt, Log: log, DataDir: o.data, SnapshotEvery: o.snapEvery,
		AddView: srv.AddView, Logger: logger,
		RecordSwap: swapRecorder(chron),
		ViewExists: srv.HasView,
	})
	started := map[string]bool{}
	for _, spec := range o.plugins {
		name, file, _ := strings.Cut(spec, "=")
		wasm, err := os.ReadFile(file)
		if err != nil {
			rv.stop()
			return nil, fmt.Errorf("--plugin %s: %w", spec, err)
		}
		sha, err := rv.mgr.Boot(ctx, name, wasm)
		if err != nil {
			rv.stop()
			return nil, fmt.Errorf("--plugin %s: %w", spec, err)
		}
		if _, err := rv.mgr.StartView(ctx, name, sha); err != nil {
			rv.stop()
			return nil, fmt.Errorf("--plugin %s: %w", spec, err)
		}
		started[name] = true
	}
	// Views deployed over the API run again after a restart.
	for _, a := range st.Actives() {
		if started[a.View] {
			continue
		}
		if _, err := rv.mgr.StartView(ctx, a.View, a.SHA256); err != nil {
			rv.stop()
			return nil, fmt.Errorf("view %s (version %s from the plugin store): %w", a.View, a.SHA256[:12], err)
		}
	}
	rv.mgr.Register(srv)
	return rv, nil
}

func (rv *runningViews) stop() {
	if rv.mgr != nil {
		rv.mgr.Stop()
	}
	if rv.rt != nil {
		rv.rt.Close(context.Background())
	}
}

// The producer under which the host records its own control events.
const hostProducer = "nodb.host"

// swapRecorder returns a deploy.Config.RecordSwap that appends a "nodb/swap"
// event {view, from, to} through the chronicler, under hostProducer.
func swapRecorder(chron *chronicler.Chronicler) func(ctx context.Context, view, from, to string) error {
	var mu sync.Mutex // one pseq at a time
	return func(ctx context.Context, view, from, to string) error {
		mu.Lock()
		defer mu.Unlock()
		last, _, _ := chron.ProducerInfo(hostProducer)
		payload, err := json.Marshal(map[string]string{"view": view, "from": from, "to": to})
		if err != nil {
			return err
		}
		_, err = chron.Publish(ctx, wire.Event{Producer: hostProducer, PSeq: last + 1, Type: "nodb/swap", Payload: payload})
		return err
	}
}
