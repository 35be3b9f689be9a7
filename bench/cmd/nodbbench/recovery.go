package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog/filelog"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/plugins"
)

// The recovery benchmark: how long a restarted `nodb serve` takes to serve
// again when its data directory holds 1M events (the replay benchmark's todo
// stream, written with filelog) and a snapshot of the todos view, and, for
// contrast, the same without the snapshot (a full replay).

var (
	recoveryEvents   = flag.Int("recovery.events", 1_000_000, "recovery: events in the log (-quick: 100000)")
	recoveryRuns     = flag.Int("recovery.runs", 3, "recovery: timed restarts with the snapshot; the median is reported (-quick: 1)")
	recoveryFull     = flag.Int("recovery.full-runs", 1, "recovery: timed restarts without the snapshot (0: skip)")
	recoveryProf     = flag.String("recovery.cpuprofile", "", "recovery: write a CPU profile of the server's first timed restart with the snapshot (nodb serve --cpuprofile) to this file")
	recoveryFullProf = flag.String("recovery.full-cpuprofile", "", "recovery: write a CPU profile of the server's first restart without the snapshot (a full replay) to this file")
)

func init() {
	register("recovery", "restart of nodb serve over 1M events: with a snapshot of the todos view, and with a full replay", runRecovery)
}

// restart is one timed start of nodb serve.
type restart struct {
	readyz   time.Duration // /readyz answered 200
	ready    time.Duration // and GET /v1/views/todos showed seq == head
	phases   []phase       // from the server's JSON logs, relative to the start
	fromSeq  uint64        // the view's first seq (its snapshot's)
	snapshot string        // "loaded snapshot" seq, if any
}

type phase struct {
	at  time.Duration
	msg string
}

func runRecovery(ctx context.Context, env *Env) (Results, error) {
	n := *recoveryEvents
	runs := max(*recoveryRuns, 1)
	if env.Quick {
		if !flagSet("recovery.events") {
			n = 100_000
		}
		if !flagSet("recovery.runs") {
			runs = 1
		}
	}
	bin, err := env.Nodb(ctx)
	if err != nil {
		return nil, err
	}
	wasm, err := todosWasm(ctx, env)
	if err != nil {
		return nil, err
	}
	wasmPath := filepath.Join(env.Root, "examples", "todos", "todos.wasm")
	data, err := os.MkdirTemp(env.TmpDir, "recovery-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(data)
	scale := fmt.Sprintf("%dk", n/1000)
	if n%1_000_000 == 0 {
		scale = fmt.Sprintf("%dm", n/1_000_000)
	}

	// 1. The log: n events with filelog, in batches of 8192 (one fdatasync
	// each), as the chronicler would have written them.
	t0 := time.Now()
	head, err := writeTodoLog(ctx, data, n)
	if err != nil {
		return nil, err
	}
	logBytes := dirSize(filepath.Join(data, filelog.SubDir))
	env.Logf("recovery: wrote %d events (%.0f MB) with filelog in %s", head, float64(logBytes)/1e6, time.Since(t0).Round(time.Millisecond))

	// 2. The snapshot: the todos view built in this process from the same
	// plugin bytes (so the plugin hash matches), with nodb serve's layout:
	// DATA/snapshots/todos/, wazero's cache in DATA/cache/wazero.
	t0 = time.Now()
	snapSeq, err := buildSnapshot(ctx, data, wasm, head)
	if err != nil {
		return nil, err
	}
	env.Logf("recovery: view at head %d and snapshot at seq %d in %s (tail to replay on restart: %d events)", head, snapSeq, time.Since(t0).Round(time.Millisecond), head-snapSeq)

	res := Results{}
	prefix := "recovery.snapshot_" + scale
	// One untimed start: it checks the setup and leaves wazero's cache as
	// a previous run of the server would.
	if _, err := timeRestart(ctx, bin, data, wasmPath, head); err != nil {
		return nil, fmt.Errorf("first start: %w", err)
	}
	var snapRuns []restart
	for i := 0; i < runs && ctx.Err() == nil; i++ {
		var extra []string
		if i == 0 && *recoveryProf != "" {
			p, _ := filepath.Abs(*recoveryProf)
			extra = []string{"--cpuprofile", p}
		}
		r, err := timeRestart(ctx, bin, data, wasmPath, head, extra...)
		if err != nil {
			return res, err
		}
		if r.fromSeq != snapSeq {
			return res, fmt.Errorf("restart %d: the view started from seq %d, not the snapshot's %d (snapshot not used?)", i+1, r.fromSeq, snapSeq)
		}
		env.Logf("recovery: restart with snapshot %d: readyz %s, view at head %s", i+1, r.readyz.Round(time.Millisecond), r.ready.Round(time.Millisecond))
		snapRuns = append(snapRuns, r)
	}
	snap := medianRestart(snapRuns)
	res[prefix+".ready_ms"] = ms(snap.ready)
	res[prefix+".readyz_ms"] = ms(snap.readyz)
	res["recovery.events"] = float64(head)
	res["recovery.tail_events"] = float64(head - snapSeq)
	res["recovery.log_mb"] = float64(logBytes) / 1e6

	var full *restart
	if *recoveryFull > 0 && ctx.Err() == nil {
		// The same without the snapshot: move it aside (the server writes
		// new ones while it replays; they are thrown away after).
		snaps := filepath.Join(data, "snapshots")
		aside := filepath.Join(data, "snapshots.aside")
		if err := os.Rename(snaps, aside); err != nil {
			return res, err
		}
		var fullRuns []restart
		for i := 0; i < *recoveryFull && ctx.Err() == nil; i++ {
			var extra []string
			if i == 0 && *recoveryFullProf != "" {
				p, _ := filepath.Abs(*recoveryFullProf)
				extra = []string{"--cpuprofile", p}
			}
			r, err := timeRestart(ctx, bin, data, wasmPath, head, extra...)
			os.RemoveAll(snaps)
			if err != nil {
				return res, err
			}
			if r.fromSeq != 0 {
				return res, fmt.Errorf("full replay started from seq %d", r.fromSeq)
			}
			env.Logf("recovery: restart without snapshot %d: readyz %s, view at head %s", i+1, r.readyz.Round(time.Millisecond), r.ready.Round(time.Millisecond))
			fullRuns = append(fullRuns, r)
		}
		if err := os.Rename(aside, snaps); err != nil {
			return res, err
		}
		if len(fullRuns) > 0 {
			f := medianRestart(fullRuns)
			full = &f
			res["recovery.full_replay_"+scale+".ready_ms"] = ms(f.ready)
			res["recovery.full_replay_"+scale+".readyz_ms"] = ms(f.readyz)
			res["recovery.full_replay_"+scale+".events_per_s"] = float64(head) / (f.ready - f.readyz).Seconds()
		}
	}

	printRecovery(head, snapSeq, logBytes, scale, runs, snap, full)
	return res, nil
}

func medianRestart(rs []restart) restart {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b restart) int { return int(a.ready - b.ready) })
	return s[len(s)/2]
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// buildSnapshot runs the todos view over the log in data to head and writes
// a snapshot of its newest epoch boundary; it returns the snapshot's seq.
func buildSnapshot(ctx context.Context, data string, wasm []byte, head uint64) (uint64, error) {
	lg, err := filelog.Open(filelog.DefaultConfig(data))
	if err != nil {
		return 0, err
	}
	defer lg.Close()
	rt, err := plugins.NewRuntime(ctx, plugins.Config{CacheDir: filepath.Join(data, "cache", "wazero")})
	if err != nil {
		return 0, err
	}
	defer rt.Close(context.Background())
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		return 0, err
	}
	red, err := view.NewWasmReducer(ctx, mod, "todos", plugins.InstanceConfig{})
	if err != nil {
		return 0, err
	}
	v, err := view.New(view.Config{
		Name: "todos", Reducer: red, Log: lg,
		SnapshotDir:   filepath.Join(data, "snapshots"),
		SnapshotEvery: 1 << 62, // only the explicit one below
	})
	if err != nil {
		red.Close()
		return 0, err
	}
	vctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- v.Run(vctx) }()
	err = v.WaitFor(ctx, head)
	var seq uint64
	if err == nil {
		seq, err = v.Snapshot()
	}
	cancel()
	if rerr := <-done; err == nil {
		err = rerr
	}
	v.FlushSnapshots()
	if err == nil && seq == 0 {
		err = errors.New("no snapshot written (fewer events than one epoch?)")
	}
	return seq, err
}

// timeRestart starts nodb serve on data and times it until /readyz is 200
// and the todos view has reached head, then stops it with SIGTERM.
func timeRestart(ctx context.Context, bin, data, wasmPath string, head uint64, extra ...string) (restart, error) {
	var r restart
	addr, err := freeAddr()
	if err != nil {
		return r, err
	}
	out := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", addr, "--log-level", "info", "--log-json",
		"--plugin", "todos="+wasmPath)
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stdout, cmd.Stderr = out, out
	client := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	atCleanup(stop)
	defer stop()

	deadline := start.Add(5 * time.Minute)
	viewURL := "http://" + addr + "/v1/views/todos"
	// "At head" is the server's own "view caught up" log line with the
	// head's seq, read from its output as it comes. The view's status would
	// say so too, but it carries the root hash, which the server computes
	// for every new state it reports: polled every few ms through a full
	// replay, that hashing took ~1.2 s of the server's CPU (profiled) and
	// slowed the very replay being measured. The status is still read,
	// every 200 ms, to notice a halt.
	var nextStatus time.Time
	for {
		if r.readyz == 0 {
			if resp, err := client.Get("http://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					r.readyz = time.Since(start)
				}
			}
		}
		if caughtUp(out.String(), head) {
			r.ready = time.Since(start)
			break
		}
		if r.readyz != 0 && !time.Now().Before(nextStatus) {
			nextStatus = time.Now().Add(200 * time.Millisecond)
			if resp, err := client.Get(viewURL); err == nil {
				var st view.Status
				derr := json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
				if derr == nil && resp.StatusCode == http.StatusOK && st.Phase == view.PhaseHalted {
					return r, fmt.Errorf("view halted at %d: %s", st.HaltedAt, st.Error)
				}
			}
		}
		select {
		case <-exited:
			return r, fmt.Errorf("nodb serve exited early:\n%s", out)
		case <-ctx.Done():
			return r, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("nodb serve not at head after 5 minutes:\n%s", out)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	r.phases, r.fromSeq, r.snapshot = parseServeLog(out.String(), start)
	return r, nil
}

// caughtUp reports whether nodb serve's JSON logs hold the todos view's
// "view caught up" line at seq head or beyond.
func caughtUp(logs string, head uint64) bool {
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"view caught up"`) {
			continue
		}
		var m struct {
			View string  `json:"view"`
			Seq  float64 `json:"seq"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && (m.View == "" || m.View == "todos") && uint64(m.Seq) >= head {
			return true
		}
	}
	return false
}

// parseServeLog picks the startup milestones out of nodb serve's JSON logs.
func parseServeLog(logs string, start time.Time) ([]phase, uint64, string) {
	var ps []phase
	var from uint64
	var snap string
	want := map[string]string{
		"listening":            "listening (/livez up)",
		"event log opened":     "event log opened (segments scanned)",
		"dedupe table rebuilt": "chronicler dedupe table rebuilt",
		"loaded snapshot":      "view: snapshot loaded",
		"view started":         "view started (plugin compiled, instance up)",
		"ready":                "ready (/readyz 200)",
	}
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		msg, _ := m["@message"].(string)
		label, ok := want[msg]
		if !ok {
			continue
		}
		ts, _ := m["@timestamp"].(string)
		t, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", ts)
		if err != nil {
			continue
		}
		switch msg {
		case "view started":
			if f, ok := m["from_seq"].(float64); ok {
				from = uint64(f)
			}
		case "loaded snapshot":
			snap = fmt.Sprint(m["seq"])
		}
		ps = append(ps, phase{at: t.Sub(start), msg: label})
	}
	return ps, from, snap
}

func printRecovery(head, snapSeq uint64, logBytes int64, scale string, runs int, snap restart, full *restart) {
	fmt.Printf("\nrecovery: nodb serve restarted on %d events (%.0f MB of log), todos view\n\n", head, float64(logBytes)/1e6)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "start\treadyz\tview at head\tnotes")
	fmt.Fprintf(tw, "with snapshot\t%s\t%s\tsnapshot seq %d, tail %d events; median of %d\n", snap.readyz.Round(time.Millisecond), snap.ready.Round(time.Millisecond), snapSeq, head-snapSeq, runs)
	if full != nil {
		fmt.Fprintf(tw, "full replay\t%s\t%s\tno snapshot: %d events through the Wasm reducer\n", full.readyz.Round(time.Millisecond), full.ready.Round(time.Millisecond), head)
	}
	tw.Flush()
	show := func(name string, r restart) {
		fmt.Printf("\n  %s, from the process start (server log timestamps, ~ms):\n", name)
		for _, p := range r.phases {
			fmt.Printf("    %8s  %s\n", p.at.Round(time.Millisecond), p.msg)
		}
		fmt.Printf("    %8s  /readyz 200 seen by the poller\n", r.readyz.Round(time.Millisecond))
		fmt.Printf("    %8s  view caught up at seq %d (its log line, seen by the poller)\n", r.ready.Round(time.Millisecond), head)
	}
	show("with snapshot", snap)
	if full != nil {
		show("full replay", *full)
	}
	mark := "MET"
	if snap.ready > time.Second {
		mark = "NOT MET"
	}
	fmt.Printf("\n  target restart to serving <= 1 s (%s): %s (%s)\n", scale, mark, snap.ready.Round(time.Millisecond))
}

// writeTodoLog writes n generated todo events into a filelog in dir, in
// batches of 8192 (one fdatasync each) as the chronicler would, and returns
// the head.
func writeTodoLog(ctx context.Context, dir string, n int) (uint64, error) {
	recs := genTodoRecords(n, *replayClear)
	lg, err := filelog.Open(filelog.DefaultConfig(dir))
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(recs); i += 8192 {
		if err := lg.Append(ctx, recs[i:min(i+8192, len(recs))]); err != nil {
			lg.Close()
			return 0, err
		}
	}
	head := lg.LastSeq()
	return head, lg.Close()
}
