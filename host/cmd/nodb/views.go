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
	"github.com/nodb-dev/nodb/host/cascade"
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
		if err := deploy.CheckViewName(name); err != nil {
			return fmt.Errorf("--plugin: %w", err)
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
	st, err := store.Open(filepath.Join(o.data, "plugins"), rt, 0, logger.Named("plugins"))
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	upstreams, err := parseUpstreams(o.upstreams, logger)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	rv.mgr = deploy.New(deploy.Config{
		Store: st, Runtime: rt, Log: log, DataDir: o.data, SnapshotEvery: o.snapEvery,
		AddView: srv.AddView, Logger: logger,
		RecordSwap: swapRecorder(chron),
		Upstreams:  upstreams,
		ViewExists: srv.HasView,
	})
	// Store every --plugin first, then start views in dependency order:
	// reducers, then cascades whose local inputs run (a cascade may read
	// another cascade).
	type boot struct {
		name, sha, what string
		fromStore       bool
	}
	var todo []boot
	given := map[string]bool{}
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
		todo = append(todo, boot{name, sha, "--plugin " + spec, false})
		given[name] = true
	}
	// Views deployed over the API run again after a restart.
	for _, a := range st.Actives() {
		if !given[a.View] {
			todo = append(todo, boot{a.View, a.SHA256, fmt.Sprintf("view %s (version %s from the plugin store)", a.View, a.SHA256[:12]), true})
		}
	}
	// A deployed view that cannot start is left out (failed), and so are
	// the cascades reading it, which then start and fail on the input.
	// A --plugin view that cannot start stops the host: its command line
	// asked for it.
	started, failed := map[string]bool{}, map[string]bool{}
	skip := func(b boot, err error) {
		logger.Error("a deployed view could not start; the host runs without it", "view", b.name, "version", b.sha[:12],
			"file", filepath.Join(st.Dir(), b.sha+".wasm"), "error", err,
			"fix", fmt.Sprintf("restore the file from a backup and restart, or start the view with another version: nodb deploy --name %s FILE.wasm", b.name))
		failed[b.name] = true
	}
	for len(todo) > 0 {
		var later []boot
		for _, b := range todo {
			man, _, err := st.Get(b.sha)
			if err != nil {
				if b.fromStore {
					skip(b, err)
					continue
				}
				rv.stop()
				return nil, fmt.Errorf("%s: %w", b.what, err)
			}
			ready := true
			for _, in := range man.Inputs {
				if rv.mgr.Upstream(man, in) == "" && !started[in] && !failed[in] && (given[in] || hasActive(st, in)) {
					ready = false
				}
			}
			if !ready {
				later = append(later, b)
				continue
			}
			if _, err := rv.mgr.StartView(ctx, b.name, b.sha); err != nil {
				if b.fromStore {
					skip(b, err)
					continue
				}
				rv.stop()
				return nil, fmt.Errorf("%s: %w", b.what, err)
			}
			started[b.name] = true
		}
		if len(later) == len(todo) {
			rv.stop()
			return nil, fmt.Errorf("%s: its inputs read each other in a cycle", later[0].what)
		}
		todo = later
	}
	rv.mgr.Register(srv)
	return rv, nil
}

func hasActive(st *store.Store, view string) bool {
	_, ok := st.Active(view)
	return ok
}

// parseUpstreams checks the --upstream NAME=URL flags.
func parseUpstreams(specs []string, logger hclog.Logger) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		name, u, ok := strings.Cut(s, "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("--upstream %q: want NAME=URL, e.g. --upstream todos=ws://10.0.0.5:7070 (add ?view=OTHER if the view has another name there, &access_token=T with a read token of that host)", s)
		}
		if _, err := cascade.ParseRemote(name, u, logger); err != nil {
			return nil, fmt.Errorf("--upstream %s", err.Error()[len("upstream "):])
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--upstream: input %q given twice", name)
		}
		out[name] = u
	}
	return out, nil
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
		payload, err := json.Marshal(map[string]string{"view": view, "from": from, "to": to})
		if err != nil {
			return err
		}
		for {
			// ProducerInfo counts durable events only: if an earlier
			// record (whose Publish gave up on its ctx) was still being
			// written, last+1 is its pseq and the ack is a duplicate; it
			// is durable by then, so ask again.
			last, _, _ := chron.ProducerInfo(hostProducer)
			ack, err := chron.Publish(ctx, wire.Event{Producer: hostProducer, PSeq: last + 1, Type: "nodb/swap", Payload: payload})
			if err != nil || !ack.Duplicate {
				return err
			}
		}
	}
}
