package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/internal/gowasm"
	client "github.com/nodb-dev/nodb/sdk/client/go"
)

// This file holds the replay-determinism test and the helpers it shares with
// snapshot_crash_test.go: building the Wasm reducers, publishing a
// deterministic workload with the Go client SDK, and reading /v1/views.

// Wasm reducers built once per test binary, next to nodbBin (TestMain removes
// that directory): name -> package directory relative to this one.
var replayPlugins = map[string]string{
	"todos": "../../../examples/todos/reducer",
	"chaos": "../../../plugins/testdata/go/chaos",
}

var (
	replayPluginsOnce sync.Once
	replayPluginsErr  error
)

// replayPlugin returns the path of a reducer of replayPlugins, built for
// wasip1 with -buildmode=c-shared.
func replayPlugin(t testing.TB, name string) string {
	t.Helper()
	replayPluginsOnce.Do(func() {
		dir := filepath.Join(filepath.Dir(nodbBin), "wasm")
		var mu sync.Mutex
		var wg sync.WaitGroup
		for n, pkg := range replayPlugins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := gowasm.Build(context.Background(), "", pkg, filepath.Join(dir, n+".wasm")); err != nil {
					mu.Lock()
					replayPluginsErr = errors.Join(replayPluginsErr, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	})
	if replayPluginsErr != nil {
		t.Fatal(replayPluginsErr)
	}
	if _, ok := replayPlugins[name]; !ok {
		t.Fatalf("no reducer %q", name)
	}
	return filepath.Join(filepath.Dir(nodbBin), "wasm", name+".wasm")
}

// detHTTP bounds every API call of these tests, so that a host that stops
// answering fails the test instead of hanging it.
var detHTTP = &http.Client{Timeout: 20 * time.Second}

// apiView is one entry of GET /v1/views.
type apiView struct {
	Name        string `json:"name"`
	Plugin      string `json:"plugin"`
	Seq         uint64 `json:"seq"`
	Head        uint64 `json:"head"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	HaltedAt    uint64 `json:"halted_at"`
	RootHash    string `json:"root_hash"`
	SnapshotSeq uint64 `json:"snapshot_seq"`
	// Rejected counts events the reducer rejected since the host started.
	// The workloads of these tests are built to have none, so a count means
	// a replay applied an event twice (a duplicate add) or out of order.
	Rejected      uint64 `json:"rejected"`
	LastRejection string `json:"last_rejection"`
	Note          string `json:"note"`
}

// checkNoRejections fails the test if a view rejected events.
func checkNoRejections(t testing.TB, host string, vs map[string]apiView) {
	t.Helper()
	for n, v := range vs {
		if v.Rejected != 0 {
			t.Errorf("%s: view %s rejected %d events (last: %s); the workload has none", host, n, v.Rejected, v.LastRejection)
		}
	}
}

// getViews returns GET /v1/views by name.
func getViews(t testing.TB, addr string) map[string]apiView {
	t.Helper()
	resp, err := detHTTP.Get("http://" + addr + "/v1/views")
	if err != nil {
		t.Fatalf("GET /v1/views: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/views: %s: %s", resp.Status, body)
	}
	var out struct {
		Views []apiView `json:"views"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET /v1/views: %v: %s", err, body)
	}
	m := map[string]apiView{}
	for _, v := range out.Views {
		m[v.Name] = v
	}
	return m
}

// waitViewsAtHead waits until each named view has applied every event of the
// log (seq == head) and returns their statuses. head 0 means the log's head
// as the host reports it (publishers must be stopped); otherwise the views
// must reach exactly that head. A halted view fails the test.
func waitViewsAtHead(t testing.TB, p *proc, head uint64, names ...string) map[string]apiView {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		vs := getViews(t, p.addr)
		done := true
		for _, n := range names {
			v, ok := vs[n]
			if !ok {
				t.Fatalf("host %s has no view %q: %+v", p.addr, n, vs)
			}
			if v.Status == "halted" {
				t.Fatalf("view %s halted at seq %d: %s\n%s", n, v.HaltedAt, v.Error, p.stderr)
			}
			want := head
			if want == 0 {
				want = v.Head
			}
			if v.Head > want && head != 0 {
				t.Fatalf("view %s: log head %d is beyond the expected %d", n, v.Head, head)
			}
			if v.Seq != want || v.Head != want {
				done = false
			}
		}
		if done {
			return vs
		}
		if time.Now().After(deadline) {
			t.Fatalf("views %v not at the log's head (want %d; 0: whatever the host reports) after 60s: %+v\n%s", names, head, vs, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// viewStateJSON returns GET /v1/views/{name}/state and the seq it reflects.
func viewStateJSON(t testing.TB, addr, name string) ([]byte, uint64) {
	t.Helper()
	resp, err := detHTTP.Get("http://" + addr + "/v1/views/" + name + "/state")
	if err != nil {
		t.Fatalf("GET state of %s: %v", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET state of %s: %v %s: %.200s", name, err, resp.Status, body)
	}
	seq, _ := strconv.ParseUint(resp.Header.Get("X-Nodb-Seq"), 10, 64)
	return body, seq
}

// copyLogDir copies src/log (only the event log: no snapshots, no compiled
// module cache) to dst/log. The host owning src must be stopped.
func copyLogDir(t testing.TB, src, dst string) {
	t.Helper()
	from := filepath.Join(src, "log")
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		to := filepath.Join(dst, "log", rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the log: %v", err)
	}
}

var viewStartedRE = regexp.MustCompile(`view started: view=(\S+) (?:kind=\S+ )?plugin=\S+ from_seq=(\d+)`)

// startedFrom returns the seq each named view of a host started from (its
// loaded snapshot, or 0), from the host's "view started" log lines. The
// lines are logged before /readyz says ready but reach p.stderr through a
// pipe, so it waits for them.
func startedFrom(t testing.TB, p *proc, views ...string) map[string]uint64 {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m := map[string]uint64{}
		for _, sm := range viewStartedRE.FindAllStringSubmatch(p.stderr.String(), -1) {
			n, _ := strconv.ParseUint(sm[2], 10, 64)
			m[sm[1]] = n
		}
		missing := false
		for _, v := range views {
			_, ok := m[v]
			missing = missing || !ok
		}
		if !missing {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"view started\" log line for every view of %v\n%s", views, p.stderr)
		}
	}
}

// snapshotFiles lists DATA/snapshots/VIEW: the seqs of the complete snapshot
// files (NNN.snap), oldest first, and the names of temp files (.tmp-*).
func snapshotFiles(t testing.TB, dataDir, view string) (snaps []uint64, tmps []string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dataDir, "snapshots", view))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".snap"); ok {
			if n, err := strconv.ParseUint(name, 10, 64); err == nil {
				snaps = append(snaps, n)
			}
		} else if strings.HasPrefix(e.Name(), ".tmp-") {
			tmps = append(tmps, e.Name())
		}
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i] < snaps[j] })
	return snaps, tmps
}

// todoEvent is event pseq n of a todos producer: adds (6 in 10), toggles,
// renames, deletes and clear-completed, all referring to the producer's own
// ids so that no event is rejected however producers interleave. It is a
// pure function of (producer, n), so a re-sent pseq carries the same event.
func todoEvent(producer string, n uint64) (string, json.RawMessage) {
	id := func(k uint64) string { return fmt.Sprintf("%s-%d", producer, k) }
	switch r := n % 10; {
	case r < 6:
		return "todo/add", json.RawMessage(fmt.Sprintf(`{"id":%q,"text":"todo %d of %s %s"}`, id(n), n, producer, strings.Repeat("·", int(n%40))))
	case r == 6 || r == 7:
		return "todo/toggle", json.RawMessage(fmt.Sprintf(`{"id":%q}`, id(n-6)))
	case r == 8:
		return "todo/rename", json.RawMessage(fmt.Sprintf(`{"id":%q,"text":"renamed %d"}`, id(n-6), n))
	case n%1000 == 999: // rare: the reducer reads all of /todos for it
		return "todo/clear-completed", json.RawMessage(`{}`)
	default:
		return "todo/delete", json.RawMessage(fmt.Sprintf(`{"id":%q}`, id(n-6)))
	}
}

// tickEvent is event pseq n of a chaos producer.
func tickEvent(producer string, n uint64) (string, json.RawMessage) {
	return "tick", json.RawMessage(fmt.Sprintf(`{"n":%d,"by":%q}`, n, producer))
}

type eventGen func(producer string, n uint64) (string, json.RawMessage)

// publisher publishes one producer's events pseq from, from+1, … with the Go
// client SDK (pipelined over one WebSocket) until count events are queued
// or stop is closed. Errors other than the connection going away are
// recorded in err.
type publisher struct {
	producer string
	gen      eventGen
	rate     int    // events per second, 0 for as fast as the host acks
	queued   uint64 // events handed to the client
	mu       sync.Mutex
	err      error
}

func (p *publisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// run publishes pseqs from.. until count are queued (count 0: no limit) or
// ctx ends; with flush it then waits for every ack. It returns the client's
// stats.
func (p *publisher) run(ctx context.Context, addr string, from uint64, count int, flush bool) client.Stats {
	c, err := client.Dial(ctx, "ws://"+addr+"/v1/ws", client.WithProducer(p.producer), client.WithStartPSeq(from),
		client.WithMaxInFlight(1024), client.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		if ctx.Err() == nil {
			p.fail(fmt.Errorf("producer %s: dial: %w", p.producer, err))
		}
		return client.Stats{}
	}
	futures := make(chan *client.Future, 4096)
	checked := make(chan struct{})
	go func() { // every ack must be a success, or the connection going away
		defer close(checked)
		for f := range futures {
			if _, err := f.Result(); err != nil && !errors.Is(err, client.ErrClosed) && !errors.Is(err, context.Canceled) {
				p.fail(fmt.Errorf("producer %s pseq %d: %w", p.producer, f.PSeq(), err))
			}
		}
	}()
	t0 := time.Now()
	for n := from; count == 0 || n < from+uint64(count); n++ {
		if ctx.Err() != nil {
			break
		}
		// Bursts of 29 events (prime, so commits and the view's batches end
		// anywhere, not on multiples of the epoch size).
		if k := n - from; p.rate > 0 && k%29 == 0 {
			if d := time.Duration(k) * time.Second / time.Duration(p.rate); d > time.Since(t0) {
				select {
				case <-time.After(d - time.Since(t0)):
				case <-ctx.Done():
				}
			}
		}
		typ, payload := p.gen(p.producer, n)
		futures <- c.PublishAsync(ctx, typ, payload)
		p.queued++
	}
	if flush {
		fctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := c.Flush(fctx); err != nil {
			p.fail(fmt.Errorf("producer %s: flush: %w", p.producer, err))
		}
		cancel()
	}
	st := c.Stats()
	c.Close()
	close(futures)
	<-checked
	return st
}

// TestReplayDeterminism: the same log replayed on two fresh hosts gives the
// same root hash, and a restart from snapshots gives it too, for the todos
// example and for a reducer that iterates Go maps and reads the clock and
// every random source Go has (plugins/testdata/go/chaos).
func TestReplayDeterminism(t *testing.T) {
	if testing.Short() {
		t.Skip("determinism test runs real processes")
	}
	start := time.Now()
	views := []string{"chaos", "todos"}
	args := []string{
		"--plugin", "todos=" + replayPlugin(t, "todos"),
		"--plugin", "chaos=" + replayPlugin(t, "chaos"),
		"--snapshot-every", strconv.Itoa(abi.EpochSize),
	}
	t.Logf("reducers built in %v", time.Since(start).Round(time.Millisecond))

	// Host A: the live host. Four producers (two per reducer) publish
	// concurrently, so the log interleaves them.
	dirA, addrA := t.TempDir(), freeAddr(t)
	a := startServe(t, dirA, addrA, args...)
	const perProducer = 2600 // 4 × 2600 = 10400 events: epochs 0, 1 and 2
	pubs := []*publisher{
		{producer: "det-todo-a", gen: todoEvent}, {producer: "det-todo-b", gen: todoEvent},
		{producer: "det-tick-a", gen: tickEvent}, {producer: "det-tick-b", gen: tickEvent},
	}
	pubStart := time.Now()
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(context.Background(), addrA, 1, perProducer, true)
		}()
	}
	wg.Wait()
	for _, p := range pubs {
		if p.err != nil {
			t.Fatal(p.err)
		}
	}
	head := uint64(len(pubs) * perProducer)
	if head <= 2*abi.EpochSize {
		t.Fatalf("workload of %d events does not span 2 epochs", head)
	}
	pubTook := time.Since(pubStart)
	liveA := waitViewsAtHead(t, a, head, views...)
	checkNoRejections(t, "host A", liveA)
	t.Logf("host A: %d events published in %v, views live at seq %d (epoch %d)", head, pubTook.Round(time.Millisecond), head, abi.Epoch(head))
	stateA := map[string][]byte{}
	for _, n := range views {
		var seq uint64
		stateA[n], seq = viewStateJSON(t, addrA, n)
		if seq != head {
			t.Fatalf("state of %s is at seq %d, want %d", n, seq, head)
		}
		t.Logf("host A: view %s root %s, state %d bytes, snapshot_seq %d", n, liveA[n].RootHash, len(stateA[n]), liveA[n].SnapshotSeq)
	}
	checkChaosState(t, stateA["chaos"], 2*perProducer)
	// Snapshots are written in the background: wait for the one of the last
	// epoch boundary before stopping A.
	lastBoundary := head / abi.EpochSize * abi.EpochSize
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		vs, done := getViews(t, addrA), true
		for _, n := range views {
			done = done && vs[n].SnapshotSeq == lastBoundary
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host A: snapshots of seq %d not written after 30s: %+v", lastBoundary, vs)
		}
	}
	if err := a.term(); err != nil {
		t.Fatalf("stopping host A: %v\n%s", err, a.stderr)
	}
	snapsA := map[string][]uint64{}
	for _, n := range views {
		snaps, tmps := snapshotFiles(t, dirA, n)
		snapsA[n] = snaps
		if len(tmps) > 0 {
			t.Errorf("view %s: temp snapshot files left after a graceful stop: %v", n, tmps)
		}
		if len(snaps) == 0 || snaps[len(snaps)-1] != lastBoundary {
			t.Fatalf("view %s: snapshots %v after %d events with --snapshot-every %d; want the newest at seq %d",
				n, snaps, head, abi.EpochSize, lastBoundary)
		}
		t.Logf("host A: view %s snapshots at seqs %v", n, snaps)
	}

	// Host B: a fresh data directory holding a copy of A's log only. Every
	// view replays the whole log from seq 1.
	dirB := t.TempDir()
	copyLogDir(t, dirA, dirB)
	replayStart := time.Now()
	b := startServe(t, dirB, freeAddr(t), args...)
	fromB := startedFrom(t, b, views...)
	replayB := waitViewsAtHead(t, b, head, views...)
	checkNoRejections(t, "host B", replayB)
	t.Logf("host B: full replay of %d events took %v (process start included)", head, time.Since(replayStart).Round(time.Millisecond))
	for _, n := range views {
		if fromB[n] != 0 {
			t.Fatalf("host B: view %s started from seq %d; a fresh directory must replay from 0", n, fromB[n])
		}
		if replayB[n].Plugin != liveA[n].Plugin {
			t.Fatalf("view %s: plugin %s on B, %s on A", n, replayB[n].Plugin, liveA[n].Plugin)
		}
		if replayB[n].RootHash != liveA[n].RootHash {
			t.Errorf("view %s: full replay on a fresh host gives root %s, the live host had %s", n, replayB[n].RootHash, liveA[n].RootHash)
		}
		stateB, _ := viewStateJSON(t, b.addr, n)
		if string(stateB) != string(stateA[n]) {
			t.Errorf("view %s: state after full replay differs from the live state: %s", n, firstDiff(stateA[n], stateB))
		}
	}
	if err := b.term(); err != nil {
		t.Fatalf("stopping host B: %v\n%s", err, b.stderr)
	}

	// Host C: A's own directory restarted. Each view loads its newest
	// snapshot and replays only the tail.
	restartStart := time.Now()
	c := startServe(t, dirA, addrA, args...)
	fromC := startedFrom(t, c, views...)
	restartC := waitViewsAtHead(t, c, head, views...)
	checkNoRejections(t, "host C", restartC)
	t.Logf("host C: restart from snapshots took %v (process start included)", time.Since(restartStart).Round(time.Millisecond))
	for _, n := range views {
		newest := snapsA[n][len(snapsA[n])-1]
		if fromC[n] != newest {
			t.Fatalf("host C: view %s started from seq %d; its newest snapshot is at seq %d\n%s", n, fromC[n], newest, c.stderr)
		}
		if restartC[n].SnapshotSeq == 0 || restartC[n].SnapshotSeq != newest {
			t.Fatalf("host C: view %s reports snapshot_seq %d, want %d (the snapshot it loaded)", n, restartC[n].SnapshotSeq, newest)
		}
		t.Logf("host C: view %s loaded the snapshot at seq %d and replayed %d events", n, newest, head-newest)
		if restartC[n].RootHash != liveA[n].RootHash {
			t.Errorf("view %s: snapshot %d + tail replay gives root %s, the live host had %s", n, newest, restartC[n].RootHash, liveA[n].RootHash)
		}
		stateC, _ := viewStateJSON(t, c.addr, n)
		if string(stateC) != string(stateA[n]) {
			t.Errorf("view %s: state after snapshot + tail differs from the live state: %s", n, firstDiff(stateA[n], stateC))
		}
	}
	if err := c.term(); err != nil {
		t.Fatalf("stopping host C: %v\n%s", err, c.stderr)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// checkChaosState checks that the chaos view holds one record per tick and
// that its nondeterminism sources really varied (so that equal hashes mean
// the host made them deterministic, not that they were constant).
func checkChaosState(t *testing.T, state []byte, ticks int) {
	t.Helper()
	var st struct {
		Log map[string]struct {
			Order     string `json:"order"`
			Now       int64  `json:"now"`
			Mono      int64  `json:"mono"`
			Rand      int64  `json:"rand"`
			RandV2    int64  `json:"randv2"`
			Crypto    string `json:"crypto"`
			Survivors int64  `json:"survivors"`
		} `json:"log"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatalf("chaos state: %v", err)
	}
	if len(st.Log) != ticks {
		t.Fatalf("chaos state holds %d records, want one per tick (%d)", len(st.Log), ticks)
	}
	orders, cryptos, rands := map[string]bool{}, map[string]bool{}, map[int64]bool{}
	for _, r := range st.Log {
		orders[r.Order] = true
		cryptos[r.Crypto] = true
		rands[r.Rand] = true
		if r.Now <= 0 {
			t.Fatalf("chaos record with time %d", r.Now)
		}
	}
	if len(orders) < 2 || len(cryptos) < ticks*9/10 || len(rands) < ticks*9/10 {
		t.Fatalf("chaos state barely varies (%d map orders, %d crypto values, %d rand values over %d ticks): the test would not catch nondeterminism",
			len(orders), len(cryptos), len(rands), ticks)
	}
	t.Logf("chaos: %d ticks, %d distinct map iteration orders, %d distinct crypto/rand values", ticks, len(orders), len(cryptos))
}

// firstDiff describes where two JSON texts first differ.
func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	return fmt.Sprintf("lengths %d and %d, first difference at byte %d:\n  want …%s…\n   got …%s…", len(a), len(b), i,
		a[lo:min(len(a), i+80)], b[lo:min(len(b), i+80)])
}
