// Command nodbbench runs nodb's benchmarks and records their results.
//
// Each benchmark lives in its own file and registers itself in init with
// register. A run prints a table per benchmark and merges its numeric
// results into a JSON file of flat keys (e.g. "ingest.nodb.c256.p99_ms"),
// leaving the keys of other benchmarks alone:
//
//	go run ./bench/cmd/nodbbench -bench ingest -out bench/out/results.json
//
// Benchmarks run against a baseline in the same process or script, because
// absolute numbers on a shared machine mean little; ratios are the point.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Results are the numbers a benchmark reports, by flat key.
type Results map[string]float64

// Env is what every benchmark gets: the run's settings and helpers.
type Env struct {
	// Quick asks for a short run (smoke test): fewer, shorter points.
	Quick bool
	// Root is the repository root (the directory holding go.mod).
	Root string
	// NodbBin is the nodb binary to run, from -nodb or found/built lazily by
	// Nodb.
	NodbBin string
	// TmpDir is a scratch directory removed at the end of the run.
	TmpDir string

	todosBuilt bool // todosWasm has rebuilt examples/todos/todos.wasm
}

// Logf prints a progress line to stderr.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}

// benchmark is one registered benchmark.
type benchmark struct {
	name string
	desc string
	run  func(ctx context.Context, env *Env) (Results, error)
}

var registry []*benchmark

// register adds a benchmark; call it from an init function.
func register(name, desc string, run func(ctx context.Context, env *Env) (Results, error)) {
	for _, b := range registry {
		if b.name == name {
			panic("nodbbench: benchmark " + name + " registered twice")
		}
	}
	registry = append(registry, &benchmark{name: name, desc: desc, run: run})
}

func main() {
	benchList := flag.String("bench", "", "comma-separated benchmarks to run (empty: all); -list shows them")
	out := flag.String("out", "bench/out/results.json", "JSON file to merge results into (\"\" = don't write)")
	quick := flag.Bool("quick", false, "short run: a smoke test, numbers are rough")
	nodbBin := flag.String("nodb", "", "nodb binary (default: built from this checkout into a temp dir)")
	list := flag.Bool("list", false, "list the benchmarks and exit")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the load generator) to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile of this process to this file at the end")
	flag.Parse()
	if *memProfile != "" {
		defer func() {
			f, err := os.Create(*memProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "nodbbench:", err)
				return
			}
			defer f.Close()
			pprof.Lookup("allocs").WriteTo(f, 0)
		}()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nodbbench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	slices.SortFunc(registry, func(a, b *benchmark) int { return strings.Compare(a.name, b.name) })
	if *list {
		for _, b := range registry {
			fmt.Printf("%-10s %s\n", b.name, b.desc)
		}
		return
	}
	var selected []*benchmark
	if strings.TrimSpace(*benchList) == "" {
		selected = registry
	} else {
		for _, name := range strings.Split(*benchList, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			i := slices.IndexFunc(registry, func(b *benchmark) bool { return b.name == name })
			if i < 0 {
				var names []string
				for _, b := range registry {
					names = append(names, b.name)
				}
				fmt.Fprintf(os.Stderr, "nodbbench: no benchmark %q (have: %s)\n", name, strings.Join(names, ", "))
				os.Exit(2)
			}
			selected = append(selected, registry[i])
		}
	}

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodbbench:", err)
		os.Exit(1)
	}
	tmp, err := os.MkdirTemp("", "nodbbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodbbench:", err)
		os.Exit(1)
	}
	env := &Env{Quick: *quick, Root: root, NodbBin: *nodbBin, TmpDir: tmp}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	failed := false
	all := Results{}
	var ran []string
	for _, b := range selected {
		start := time.Now()
		env.Logf("benchmark %s: %s", b.name, b.desc)
		res, err := b.run(ctx, env)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nodbbench: %s: %v\n", b.name, err)
			failed = true
		}
		if len(res) > 0 {
			ran = append(ran, b.name)
			for k, v := range res {
				all[k] = v
			}
		}
		env.Logf("benchmark %s took %s", b.name, time.Since(start).Round(time.Second))
		if ctx.Err() != nil {
			break
		}
	}
	cleanup()
	os.RemoveAll(tmp)
	if *out != "" && len(all) > 0 {
		path := *out
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		if err := mergeResults(path, ran, all); err != nil {
			fmt.Fprintln(os.Stderr, "nodbbench:", err)
			failed = true
		} else {
			fmt.Printf("\nwrote %d keys to %s\n", len(all), *out)
		}
	}
	if failed {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// mergeResults writes res into the JSON object in path. Keys of the
// benchmarks that ran ("name.") are replaced as a whole, so a system that
// was not measured this time leaves no stale number; other keys are kept.
func mergeResults(path string, ran []string, res Results) error {
	merged := map[string]json.RawMessage{}
	if b, err := os.ReadFile(path); err == nil {
		if len(strings.TrimSpace(string(b))) > 0 {
			if err := json.Unmarshal(b, &merged); err != nil {
				return fmt.Errorf("%s is not a JSON object (%v); not overwriting it", path, err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for k := range merged {
		for _, name := range ran {
			if strings.HasPrefix(k, name+".") {
				delete(merged, k)
			}
		}
	}
	for k, v := range res {
		b, err := json.Marshal(round(v))
		if err != nil {
			return fmt.Errorf("key %s: %v", k, err)
		}
		merged[k] = b
	}
	b, err := json.MarshalIndent(merged, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// round keeps 4 significant digits after the point for readability.
func round(v float64) float64 {
	if v != v { // NaN has no JSON form
		return -1
	}
	s := fmt.Sprintf("%.4g", v)
	if v >= 10000 || v <= -10000 {
		s = fmt.Sprintf("%.0f", v)
	}
	var r float64
	fmt.Sscan(s, &r)
	return r
}

// repoRoot finds the directory holding go.mod, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: run from inside the nodb repository", dir)
		}
	}
}
