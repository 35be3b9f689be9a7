package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
)

// The replay benchmark: a generated stream of todo events (replay_gen.go)
// replayed from an in-memory log through the todos reducer, as Wasm in the
// real view engine (the Go reducer, and as wasm_c the same reducer written
// in C: examples/todos/reducer-c), as the same handlers compiled natively in
// the same engine, as a hand-written Go reducer on the state tree, and as a Redux +
// Immutable.js reducer in Node.js.

var (
	replayEvents  = flag.Int("replay.events", 1_000_000, "replay: events to generate (-quick: 100000)")
	replaySystems = flag.String("replay.systems", "", "replay: systems to run (empty: all): wasm,wasm_c,native,native_statetree_direct,node_redux")
	replayRuns    = flag.Int("replay.runs", 1, "replay: passes per system; the best is reported")
	replayNode    = flag.String("replay.node", "node", "replay: the Node.js binary")
	replayClear   = flag.Int("replay.clear-every", 10000, "replay: one todo/clear-completed per this many events on average (0: none)")
	replayBreak   = flag.Bool("replay.breakdown", true, "replay: one more pass per Go system timing each Reduce call, reported per event type (=false skips it)")
)

func init() {
	register("replay", "1M todo events through the todos reducer: Wasm view vs the same handlers native vs Redux+Immutable.js in Node", runReplay)
}

var replaySystemNames = []string{"wasm", "wasm_c", "native", "native_statetree_direct", "node_redux"}

// replayOutcome is one system's result.
type replayOutcome struct {
	eventsPerS float64
	cpuPerS    float64 // events per CPU second of the process (all threads, GC included)
	withParse  float64 // node_redux: events/s counting JSON.parse of the lines too
	dur        time.Duration
	root       statetree.Value // Go systems
	stateJSON  []byte          // node_redux: its final state as JSON
	note       string
	skipped    string
	byType     map[string]*typeTime // -replay.breakdown pass
}

func runReplay(ctx context.Context, env *Env) (Results, error) {
	n := *replayEvents
	if env.Quick && !flagSet("replay.events") {
		n = 100_000
	}
	systems := replaySystemNames
	if *replaySystems != "" {
		systems = nil
		for _, s := range strings.Split(*replaySystems, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(replaySystemNames, s) {
				return nil, fmt.Errorf("replay: unknown system %q (have %s)", s, strings.Join(replaySystemNames, ","))
			}
			systems = append(systems, s)
		}
	}
	runs := max(*replayRuns, 1)

	start := time.Now()
	recs := genTodoRecords(n, *replayClear)
	stats := todoStreamStats(recs)
	env.Logf("replay: generated %d events in %s: %v", n, time.Since(start).Round(time.Millisecond), stats)
	log := memlog.New()
	for i := 0; i < len(recs); i += 4096 {
		if err := log.Append(ctx, recs[i:min(i+4096, len(recs))]); err != nil {
			return nil, err
		}
	}
	last := log.LastSeq()
	// The Node baseline reads the same events from a JSON-lines file; write
	// it now and drop the generated slice, so the Go passes run with only
	// the log's copy on the heap.
	events := filepath.Join(env.TmpDir, "replay-events.jsonl")
	if slices.Contains(systems, "node_redux") {
		if err := writeEventsJSONL(events, recs); err != nil {
			return nil, err
		}
	}
	recs = nil

	res := Results{"replay.events": float64(n)}
	out := map[string]*replayOutcome{}
	var errs []error
	for _, sys := range systems {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		var best *replayOutcome
		for run := 0; run < runs; run++ {
			runtime.GC()
			o, err := replayOne(ctx, env, sys, log, events, last, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", sys, err))
				break
			}
			if o.skipped != "" {
				best = o
				break
			}
			env.Logf("replay: %s pass %d: %.0f events/s (%s)", sys, run+1, o.eventsPerS, o.dur.Round(time.Millisecond))
			if best == nil || o.eventsPerS > best.eventsPerS {
				best = o
			}
		}
		if best == nil {
			continue
		}
		out[sys] = best
		if best.skipped == "" {
			res["replay."+sys+".events_per_s"] = best.eventsPerS
			res["replay."+sys+".events_per_cpu_s"] = best.cpuPerS
			if best.withParse > 0 {
				res["replay."+sys+".events_per_s_with_parse"] = best.withParse
			}
		}
	}

	if *replayBreak {
		for _, sys := range systems {
			if sys == "node_redux" || out[sys] == nil || ctx.Err() != nil {
				continue
			}
			runtime.GC()
			o, err := replayOne(ctx, env, sys, log, events, last, true)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s breakdown: %w", sys, err))
				continue
			}
			out[sys].byType = o.byType
			for t, tt := range o.byType {
				res["replay."+sys+".us_per_event."+strings.TrimPrefix(t, "todo/")] = tt.dur.Seconds() * 1e6 / float64(tt.n)
			}
		}
	}

	// Same state everywhere, or the numbers mean nothing.
	var ref *replayOutcome
	var refName string
	for _, sys := range []string{"wasm", "wasm_c", "native", "native_statetree_direct"} {
		o := out[sys]
		if o == nil || o.skipped != "" {
			continue
		}
		if ref == nil {
			ref, refName = o, sys
			res["replay.live_todos"] = float64(todoCount(o.root))
			continue
		}
		if a, b := ref.root.Hash(), o.root.Hash(); a != b {
			errs = append(errs, fmt.Errorf("STATE MISMATCH: %s ends with root %s, %s with %s", refName, a.String()[:16], sys, b.String()[:16]))
		} else {
			o.note += "root = " + refName + "'s " + a.String()[:16]
		}
	}
	if o := out["node_redux"]; o != nil && o.skipped == "" && ref != nil {
		if err := sameJSON(ref.root, o.stateJSON); err != nil {
			errs = append(errs, fmt.Errorf("STATE MISMATCH: node_redux's final state differs from %s's: %w", refName, err))
		} else {
			o.note += "state JSON = " + refName + "'s"
		}
	}
	if ref != nil {
		if err := checkGenerated(ref.root, n); err != nil {
			errs = append(errs, err)
		}
	}

	ratio := func(a, b string) {
		x, y := res["replay."+a+".events_per_s"], res["replay."+b+".events_per_s"]
		if x > 0 && y > 0 {
			res["replay.ratio."+a+"_over_"+b] = x / y
		}
	}
	ratio("wasm", "native")
	ratio("wasm_c", "wasm")
	ratio("wasm_c", "native")
	ratio("wasm_c", "node_redux")
	ratio("wasm", "native_statetree_direct")
	ratio("native", "native_statetree_direct")
	ratio("wasm", "node_redux")
	ratio("native", "node_redux")
	// Node's figure leaves out JSON.parse of the events, which the Wasm
	// figures include (the host turns each stored JSON payload into CBOR for
	// the guest, which decodes it): this ratio counts decoding on both sides.
	if x, y := res["replay.wasm.events_per_s"], res["replay.node_redux.events_per_s_with_parse"]; x > 0 && y > 0 {
		res["replay.ratio.wasm_over_node_redux_with_parse"] = x / y
	}

	printReplay(env, n, systems, out, res)
	for _, err := range errs {
		if strings.Contains(err.Error(), "STATE MISMATCH") {
			// Numbers of reducers that disagree mean nothing: keep them out
			// of the results file.
			fmt.Printf("\n!!! %v\n", err)
			return nil, errors.Join(errs...)
		}
	}
	return res, errors.Join(errs...)
}

// flagSet reports whether a flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func replayOne(ctx context.Context, env *Env, sys string, log eventlog.Log, events string, last uint64, timed bool) (*replayOutcome, error) {
	replayView := func(ctx context.Context, log eventlog.Log, red view.Reducer, last uint64) (*replayOutcome, error) {
		if !timed {
			return replayView(ctx, log, red, last)
		}
		tr := newTimedReducer(red)
		o, err := replayView(ctx, log, tr, last)
		if o != nil {
			o.byType = tr.byType
		}
		return o, err
	}
	switch sys {
	case "wasm", "wasm_c":
		load := todosWasm
		if sys == "wasm_c" {
			load = todosCWasm
		}
		wasm, err := load(ctx, env)
		if err != nil {
			return nil, err
		}
		rt, err := plugins.NewRuntime(ctx, plugins.Config{})
		if err != nil {
			return nil, err
		}
		defer rt.Close(context.Background())
		t0 := time.Now()
		mod, err := rt.Compile(ctx, wasm)
		if err != nil {
			return nil, err
		}
		compile := time.Since(t0)
		red, err := view.NewWasmReducer(ctx, mod, "todos", plugins.InstanceConfig{})
		if err != nil {
			return nil, err
		}
		o, err := replayView(ctx, log, red, last)
		if err == nil {
			o.note = fmt.Sprintf("compile %s (not timed); ", compile.Round(time.Millisecond))
		}
		return o, err
	case "native":
		return replayView(ctx, log, newNativeReducer(), last)
	case "native_statetree_direct":
		return replayView(ctx, log, newDirectReducer(), last)
	case "node_redux":
		return replayNodeRedux(ctx, env, events, last)
	}
	return nil, fmt.Errorf("unknown system %q", sys)
}

// replayView builds a fresh view over log with red and times Run from the
// first seq to last.
func replayView(ctx context.Context, log eventlog.Log, red view.Reducer, last uint64) (*replayOutcome, error) {
	v, err := view.New(view.Config{Name: "todos", Reducer: red, Log: log})
	if err != nil {
		red.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	cpu0 := cpuSelf()
	start := time.Now()
	go func() { done <- v.Run(rctx) }()
	err = v.WaitFor(ctx, last)
	dur := time.Since(start)
	cpu := cpuSelf() - cpu0
	root, _ := v.State()
	cancel()
	if rerr := <-done; err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	return &replayOutcome{eventsPerS: float64(last) / dur.Seconds(), cpuPerS: float64(last) / cpu.Seconds(), dur: dur, root: root}, nil
}

// todosWasm builds examples/todos/todos.wasm from the reducer's source,
// once per run, and returns it. It is always rebuilt (quick, from the Go
// build cache), because a todos.wasm left from an older checkout would
// measure an old SDK.
func todosWasm(ctx context.Context, env *Env) ([]byte, error) {
	p := filepath.Join(env.Root, "examples", "todos", "todos.wasm")
	if !env.todosBuilt {
		env.Logf("building %s", p)
		if err := gowasm.Build(ctx, env.Root, "./examples/todos/reducer", p); err != nil {
			return nil, err
		}
		env.todosBuilt = true
	}
	return os.ReadFile(p)
}

// todosCWasm returns examples/todos/todos-c.wasm, the todos reducer written
// in C (examples/todos/reducer-c; checked in, so no C compiler is needed).
func todosCWasm(_ context.Context, env *Env) ([]byte, error) {
	return os.ReadFile(filepath.Join(env.Root, "examples", "todos", "todos-c.wasm"))
}

// replayNodeRedux writes the events as JSON lines and runs
// bench/node/replay.mjs on them.
func replayNodeRedux(ctx context.Context, env *Env, events string, last uint64) (*replayOutcome, error) {
	node, err := exec.LookPath(*replayNode)
	if err != nil {
		return &replayOutcome{skipped: "node not found (" + *replayNode + "); install Node.js 18+ to run this baseline"}, nil
	}
	dir := filepath.Join(env.Root, "bench", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "immutable")); err != nil {
		env.Logf("replay: npm ci --prefix bench/node")
		cmd := exec.CommandContext(ctx, "npm", "ci", "--prefix", dir, "--no-audit", "--no-fund")
		if out, err := cmd.CombinedOutput(); err != nil {
			env.Logf("replay: npm ci --prefix bench/node failed: %v\n%s", err, out)
			return &replayOutcome{skipped: "npm ci --prefix bench/node failed (no registry?); see the log above"}, nil
		}
	}
	stateFile := filepath.Join(env.TmpDir, "replay-node-state.json")
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "replay.mjs"), events, stateFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node replay.mjs: %v\n%s", err, stderr.String())
	}
	var r struct {
		Events        int     `json:"events"`
		ParseMs       float64 `json:"parse_ms"`
		ReduceMs      float64 `json:"reduce_ms"`
		EventsPerS    float64 `json:"events_per_s"`
		WithParsePerS float64 `json:"events_per_s_with_parse"`
		CPUMs         float64 `json:"reduce_cpu_ms"`
		Node          string  `json:"node"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(outb), &r); err != nil {
		return nil, fmt.Errorf("node replay.mjs printed %q: %v", outb, err)
	}
	if uint64(r.Events) != last {
		return nil, fmt.Errorf("node replay.mjs reduced %d events, want %d", r.Events, last)
	}
	state, err := os.ReadFile(stateFile)
	if err != nil {
		return nil, err
	}
	return &replayOutcome{
		eventsPerS: r.EventsPerS,
		cpuPerS:    float64(r.Events) / (r.CPUMs / 1000),
		withParse:  r.WithParsePerS,
		dur:        time.Duration(r.ReduceMs * float64(time.Millisecond)),
		stateJSON:  state,
		note:       fmt.Sprintf("node %s; JSON.parse of the lines %.0f ms not timed (with it: %.0f events/s); ", r.Node, r.ParseMs, r.WithParsePerS),
	}, nil
}

// writeEventsJSONL writes recs as {"type":…,"payload":…} lines.
func writeEventsJSONL(path string, recs []eventlog.Record) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range recs {
		fmt.Fprintf(w, `{"type":%q,"payload":%s}`+"\n", recs[i].Type, recs[i].Payload)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sameJSON compares a state tree with JSON text as decoded values (key order
// aside).
func sameJSON(root statetree.Value, other []byte) error {
	a, err := root.MarshalJSON()
	if err != nil {
		return err
	}
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return err
	}
	if err := json.Unmarshal(other, &y); err != nil {
		return fmt.Errorf("decoding the other state: %w", err)
	}
	if !reflect.DeepEqual(x, y) {
		return fmt.Errorf("values differ (%d vs %d bytes of JSON)", len(a), len(other))
	}
	return nil
}

func todoCount(root statetree.Value) int {
	t, _ := root.Lookup("todos")
	return t.Len()
}

// checkGenerated checks the final state against the generator's own model
// of the working set (the number of live todos).
func checkGenerated(root statetree.Value, n int) error {
	g := newTodoGen(replaySeed, *replayClear)
	for k := range n {
		g.next(k)
		g.rng.IntN(replayProducers) // keep the stream in step with genTodoRecords
	}
	if got, want := todoCount(root), len(g.live); got != want {
		return fmt.Errorf("STATE MISMATCH: the views end with %d todos, the generator's model with %d", got, want)
	}
	return nil
}

func printReplay(env *Env, n int, systems []string, out map[string]*replayOutcome, res Results) {
	fmt.Printf("\nreplay: %d todo events (%.0f live todos at the end) from an in-memory log; best of %d pass(es) each\n\n", n, res["replay.live_todos"], max(*replayRuns, 1))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\tevents/s\ttime\tvs wasm\tevents/CPU-s\tnotes")
	w := res["replay.wasm.events_per_s"]
	for _, sys := range systems {
		o := out[sys]
		if o == nil {
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\n", sys)
			continue
		}
		if o.skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t%s\n", sys, o.skipped)
			continue
		}
		rel := ""
		if w > 0 {
			rel = fmt.Sprintf("%.2fx", o.eventsPerS/w)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.0f\t%s\n", sys, o.eventsPerS, o.dur.Round(time.Millisecond), rel, o.cpuPerS, o.note)
	}
	tw.Flush()
	if *replayBreak {
		fmt.Println("\nper event type (-replay.breakdown pass): µs per event, and share of the reduce time")
		tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		types := []string{"todo/add", "todo/toggle", "todo/rename", "todo/delete", "todo/clear-completed"}
		fmt.Fprint(tw, "system")
		for _, t := range types {
			fmt.Fprintf(tw, "\t%s", strings.TrimPrefix(t, "todo/"))
		}
		fmt.Fprintln(tw)
		for _, sys := range systems {
			o := out[sys]
			if o == nil || o.byType == nil {
				continue
			}
			var total time.Duration
			for _, tt := range o.byType {
				total += tt.dur
			}
			fmt.Fprint(tw, sys)
			for _, t := range types {
				if tt := o.byType[t]; tt != nil {
					fmt.Fprintf(tw, "\t%.2f (%.0f%%)", tt.dur.Seconds()*1e6/float64(tt.n), 100*tt.dur.Seconds()/total.Seconds())
				} else {
					fmt.Fprint(tw, "\t-")
				}
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	fmt.Println()
	for _, k := range []string{"wasm_over_native", "wasm_over_native_statetree_direct", "native_over_native_statetree_direct", "wasm_over_node_redux", "wasm_over_node_redux_with_parse", "native_over_node_redux", "wasm_c_over_wasm", "wasm_c_over_native", "wasm_c_over_node_redux"} {
		if v, ok := res["replay.ratio."+k]; ok {
			fmt.Printf("  ratio %-36s %.2f\n", k, v)
		}
	}
	fmt.Println()
	target := func(name string, ok bool, have string) {
		mark := "MET"
		if !ok {
			mark = "NOT MET"
		}
		fmt.Printf("  target %-44s %-8s (%s)\n", name, mark, have)
	}
	if w > 0 {
		target("wasm >= 500k events/s", w >= 500_000, fmt.Sprintf("%.0f", w))
		if r, ok := res["replay.ratio.wasm_over_native"]; ok {
			target("wasm within 2x of native", r >= 0.5, fmt.Sprintf("native is %.2fx wasm", 1/r))
		}
		if r, ok := res["replay.ratio.wasm_over_node_redux"]; ok {
			target("wasm >= 3x Node Redux+Immutable", r >= 3, fmt.Sprintf("%.2fx", r))
		}
	}
	// The same targets for the todos reducer written in C (examples/todos/
	// reducer-c): what the host and the ABI allow a lean guest.
	if c := res["replay.wasm_c.events_per_s"]; c > 0 {
		target("wasm_c >= 500k events/s", c >= 500_000, fmt.Sprintf("%.0f", c))
		if r, ok := res["replay.ratio.wasm_c_over_native"]; ok {
			target("wasm_c within 2x of native", r >= 0.5, fmt.Sprintf("native is %.2fx wasm_c", 1/r))
		}
		if r, ok := res["replay.ratio.wasm_c_over_node_redux"]; ok {
			target("wasm_c >= 3x Node Redux+Immutable", r >= 3, fmt.Sprintf("%.2fx", r))
		}
	}
}
