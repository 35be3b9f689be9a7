package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog/filelog"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/internal/gowasm"
)

// The swap benchmark: a hot swap of the todos view to a second, equivalent
// version (host/cmd/nodb/testdata/reducers/v2same) on a live `nodb serve`
// whose log holds 1M events (the replay benchmark's todo stream), while two
// readers poll GET /v1/views/todos/state; compared with the time a fresh
// server takes to replay the same log with that version.

var (
	swapEvents  = flag.Int("swap.events", 1_000_000, "swap: events in the log (-quick: 100000)")
	swapReaders = flag.Int("swap.readers", 2, "swap: goroutines polling GET /v1/views/todos/state during the swap")
	swapReadGap = flag.Duration("swap.read-interval", 50*time.Millisecond, "swap: pause between one reader's requests (0: back to back)")
)

func init() {
	register("swap", "hot swap of the todos view over 1M events (with readers polling) vs a fresh replay of that version", runSwap)
}

// swapActivateReport is the part of host/deploy.Report the benchmark reads.
type swapActivateReport struct {
	Outcome  string           `json:"outcome"`
	ReplayMS int64            `json:"replay_ms"`
	TotalMS  int64            `json:"total_ms"`
	Events   uint64           `json:"events"`
	Error    string           `json:"error"`
	Swap     *view.SwapReport `json:"swap"`
}

// swapReads counts the readers' requests during the swap.
type swapReads struct {
	reads, failed atomic.Int64
	maxNs         atomic.Int64
	firstErr      atomic.Value // string
}

func runSwap(ctx context.Context, env *Env) (Results, error) {
	n := *swapEvents
	if env.Quick && !flagSet("swap.events") {
		n = 100_000
	}
	scale := fmt.Sprintf("n%d", n)
	switch {
	case n%1_000_000 == 0:
		scale = fmt.Sprintf("m%d", n/1_000_000)
	case n%100_000 == 0 && n < 1_000_000:
		scale = fmt.Sprintf("m0%d", n/100_000) // 100k: m01
	}
	prefix := "swap." + scale + "."

	bin, err := env.Nodb(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := todosWasm(ctx, env); err != nil {
		return nil, err
	}
	v1Path := filepath.Join(env.Root, "examples", "todos", "todos.wasm")
	v2Path, err := buildSwapV2(ctx, env)
	if err != nil {
		return nil, err
	}
	v2, err := os.ReadFile(v2Path)
	if err != nil {
		return nil, err
	}

	// 1. The log: n events with filelog (as recovery writes it), and a copy
	// of DATA/log for the fresh-replay measurement.
	data, err := os.MkdirTemp(env.TmpDir, "swap-live-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(data)
	fresh, err := os.MkdirTemp(env.TmpDir, "swap-fresh-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(fresh)
	t0 := time.Now()
	head, err := writeTodoLog(ctx, data, n)
	if err != nil {
		return nil, err
	}
	if err := copyTree(ctx, filepath.Join(data, filelog.SubDir), filepath.Join(fresh, filelog.SubDir)); err != nil {
		return nil, err
	}
	env.Logf("swap: wrote %d events with filelog (and a copy of the log) in %s", head, time.Since(t0).Round(time.Millisecond))

	// 2. The live server with v1 at the head. startNodb makes its own empty
	// data dir; the later --data wins.
	t0 = time.Now()
	srv, err := env.startNodb(ctx, "--data", data, "--plugin", "todos="+v1Path)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	base := "http://" + srv.Addr
	if err := waitViewSeq(ctx, base, head, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("live server: %w", err)
	}
	env.Logf("swap: live server with v1 at head %d in %s", head, time.Since(t0).Round(time.Millisecond))

	// 3. Upload v2, then activate it with policy always while readers poll.
	sha, err := uploadPlugin(ctx, base, v2, `{"name":"todos","version":"2"}`)
	if err != nil {
		return nil, err
	}
	readers := max(*swapReaders, 0)
	var reads swapReads
	rctx, stopReads := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pollState(rctx, base+"/v1/views/todos/state", &reads)
		}()
	}
	t0 = time.Now()
	rep, progress, err := activate(ctx, base, sha)
	swapDur := time.Since(t0)
	stopReads()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if rep.Outcome != "swapped" {
		return nil, fmt.Errorf("activate: outcome %q, want swapped (error %q)", rep.Outcome, rep.Error)
	}
	identical := rep.Swap != nil && rep.Swap.Identical
	env.Logf("swap: swapped in %s (server: replay %d ms, total %d ms, %d progress lines, identical %v); %d reads, %d failed",
		swapDur.Round(time.Millisecond), rep.ReplayMS, rep.TotalMS, progress, identical, reads.reads.Load(), reads.failed.Load())
	srv.Stop()

	// 4. The pure replay of v2: a fresh server on the copy of the log, with
	// wazero's compile cache as the live server left it (it had compiled v2
	// at the upload), timed from the start until the view is at the head.
	if err := copyTree(ctx, filepath.Join(data, "cache"), filepath.Join(fresh, "cache")); err != nil {
		env.Logf("swap: no compile cache copied (%v)", err)
	}
	r, err := timeRestart(ctx, bin, fresh, v2Path, head)
	if err != nil {
		return nil, fmt.Errorf("fresh replay: %w", err)
	}
	if r.fromSeq != 0 {
		return nil, fmt.Errorf("fresh replay started from seq %d, not 0", r.fromSeq)
	}
	env.Logf("swap: fresh server with v2: readyz %s, view at head %s", r.readyz.Round(time.Millisecond), r.ready.Round(time.Millisecond))

	res := Results{
		prefix + "events":           float64(head),
		prefix + "swap_ms":          ms(swapDur),
		prefix + "server_total_ms":  float64(rep.TotalMS),
		prefix + "shadow_replay_ms": float64(rep.ReplayMS),
		prefix + "replay_ms":        ms(r.ready),
		prefix + "replay_readyz_ms": ms(r.readyz),
		prefix + "reads":            float64(reads.reads.Load()),
		prefix + "failed_reads":     float64(reads.failed.Load()),
		prefix + "read_max_ms":      float64(reads.maxNs.Load()) / 1e6,
		prefix + "swap_over_replay": ms(swapDur) / ms(r.ready),
	}
	printSwap(env, scale, head, readers, swapDur, r, rep, &reads)
	return res, nil
}

// buildSwapV2 builds the second version of todos (v2same, else v2changed).
func buildSwapV2(ctx context.Context, env *Env) (string, error) {
	name := "v2same"
	if _, err := os.Stat(filepath.Join(env.Root, "host", "cmd", "nodb", "testdata", "reducers", name)); err != nil {
		name = "v2changed"
	}
	p := filepath.Join(env.TmpDir, "swap-"+name+".wasm")
	if err := gowasm.Build(ctx, env.Root, "./host/cmd/nodb/testdata/reducers/"+name, p); err != nil {
		return "", err
	}
	env.Logf("swap: second version: %s", name)
	return p, nil
}

// copyTree copies the directory src to dst (cp -a).
func copyTree(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
	return nil
}

// waitViewSeq polls GET /v1/views/todos until its seq is head.
func waitViewSeq(ctx context.Context, base string, head uint64, limit time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	var last view.Status
	for {
		if resp, err := client.Get(base + "/v1/views/todos"); err == nil {
			var st view.Status
			derr := json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if derr == nil && resp.StatusCode == http.StatusOK {
				if st.Phase == view.PhaseHalted {
					return fmt.Errorf("view halted at %d: %s", st.HaltedAt, st.Error)
				}
				if st.Seq >= head {
					return nil
				}
				last = st
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("todos view at seq %d, not %d, after %s", last.Seq, head, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uploadPlugin POSTs the wasm to /v1/plugins and returns its sha256.
func uploadPlugin(ctx context.Context, base string, wasm []byte, manifest string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/plugins", bytes.NewReader(wasm))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Nodb-Manifest", manifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("upload: %s: %s", resp.Status, body)
	}
	var out struct {
		Manifest struct {
			SHA256 string `json:"sha256"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Manifest.SHA256 == "" {
		return "", fmt.Errorf("upload: unexpected answer %s (%v)", body, err)
	}
	return out.Manifest.SHA256, nil
}

// activate POSTs /v1/views/todos/activate with policy always and reads the
// NDJSON answer to its final report; it returns the number of progress lines.
func activate(ctx context.Context, base, sha string) (*swapActivateReport, int, error) {
	body, _ := json.Marshal(map[string]string{"sha256": sha, "policy": "always"})
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/views/todos/activate", bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, 0, fmt.Errorf("activate: %s: %s", resp.Status, b)
	}
	progress := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Type   string              `json:"type"`
			Report *swapActivateReport `json:"report"`
			Code   string              `json:"code"`
			Error  string              `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, progress, fmt.Errorf("activate: bad line %q: %v", sc.Text(), err)
		}
		switch line.Type {
		case "progress":
			progress++
		case "report":
			if line.Report == nil {
				return nil, progress, fmt.Errorf("activate: report line without a report: %s", sc.Text())
			}
			return line.Report, progress, nil
		case "error":
			return nil, progress, fmt.Errorf("activate: %s: %s", line.Code, line.Error)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, progress, fmt.Errorf("activate: reading the answer: %w", err)
	}
	return nil, progress, fmt.Errorf("activate: the answer ended without a report")
}

// pollState GETs url every -swap.read-interval until ctx ends, counting
// failures (transport errors and non-200 answers). Each read returns the
// whole todos state (~10k todos at 1M events); back to back, two readers
// would take a core of this 2-core machine away from the replay.
func pollState(ctx context.Context, url string, st *swapReads) {
	client := &http.Client{Timeout: 10 * time.Second}
	fail := func(msg string) {
		st.failed.Add(1)
		st.firstErr.CompareAndSwap(nil, msg)
	}
	for ctx.Err() == nil {
		if *swapReadGap > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(*swapReadGap):
			}
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		t := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return // cancelled at the end: not a failure
			}
			st.reads.Add(1)
			fail(err.Error())
			continue
		}
		_, cerr := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if cerr != nil && ctx.Err() != nil {
			return
		}
		st.reads.Add(1)
		d := time.Since(t).Nanoseconds()
		for {
			m := st.maxNs.Load()
			if d <= m || st.maxNs.CompareAndSwap(m, d) {
				break
			}
		}
		switch {
		case cerr != nil:
			fail(cerr.Error())
		case resp.StatusCode != http.StatusOK:
			fail(resp.Status)
		}
	}
}

func printSwap(env *Env, scale string, head uint64, readers int, swapDur time.Duration, r restart, rep *swapActivateReport, reads *swapReads) {
	fmt.Printf("\nswap: todos view hot-swapped to an equivalent version over %d events, %d readers polling its whole state every %v\n\n", head, readers, *swapReadGap)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\ttime\tnotes")
	fmt.Fprintf(tw, "swap (activate → report)\t%s\tpolicy always, outcome %s; server: total %d ms, shadow replay %d ms\n",
		swapDur.Round(time.Millisecond), rep.Outcome, rep.TotalMS, rep.ReplayMS)
	fmt.Fprintf(tw, "fresh replay (start → head)\t%s\tnew nodb serve on a copy of the log with v2; /readyz at %s\n",
		r.ready.Round(time.Millisecond), r.readyz.Round(time.Millisecond))
	tw.Flush()
	fmt.Printf("\n  reads during the swap: %d, failed %d, slowest %.1f ms\n", reads.reads.Load(), reads.failed.Load(), float64(reads.maxNs.Load())/1e6)
	if e, ok := reads.firstErr.Load().(string); ok {
		fmt.Printf("  first failed read: %s\n", e)
	}
	ratio := ms(swapDur) / ms(r.ready)
	fmt.Printf("  swap_over_replay: %.2f\n", ratio)
	mark := "MET"
	if ratio > 1.2 || reads.failed.Load() != 0 {
		mark = "NOT MET"
	}
	fmt.Printf("\n  target swap <= 1.2x replay, zero failed reads (%s): %s (%.2fx, %d failed)\n", scale, mark, ratio, reads.failed.Load())
}
