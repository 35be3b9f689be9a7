package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
)

// These tests run a real `nodb serve`, built from host/cmd/nodb in TestMain.

var (
	nodbBin      string // path of the built binary, "" when unavailable
	nodbSkip     string // why the server tests are skipped
	nodbBuildErr error  // the server package exists but did not build
)

func TestMain(m *testing.M) {
	code := func() int {
		const pkgDir = "../../../host/cmd/nodb"
		if _, err := os.Stat(pkgDir); err != nil {
			nodbSkip = "the server package host/cmd/nodb does not exist yet; skipping tests against a real nodb serve"
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "nodb-client-test-")
		if err != nil {
			nodbBuildErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "nodb")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/nodb-dev/nodb/host/cmd/nodb")
		if out, err := cmd.CombinedOutput(); err != nil {
			nodbBuildErr = fmt.Errorf("go build host/cmd/nodb: %v\n%s", err, out)
		} else {
			nodbBin = bin
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needServer(t *testing.T) {
	t.Helper()
	if nodbSkip != "" {
		t.Skip(nodbSkip)
	}
	if nodbBuildErr != nil {
		t.Fatal(nodbBuildErr)
	}
	if testing.Short() {
		t.Skip("-short: skipping tests against a real nodb serve")
	}
}

// serverProc is a `nodb serve` child process.
type serverProc struct {
	t    *testing.T
	data string
	addr string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer starts `nodb serve` (with extra args) and waits until /readyz
// answers 200.
func startServer(t *testing.T, data, addr string, args ...string) *serverProc {
	t.Helper()
	p := &serverProc{t: t, data: data, addr: addr, out: &bytes.Buffer{}}
	p.cmd = exec.Command(nodbBin, append([]string{"serve", "--data", data, "--addr", addr, "--log-level", "warn"}, args...)...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodb serve not ready after 30s: %v\n%s", err, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *serverProc) url() string { return "ws://" + p.addr + "/v1/ws" }

// kill sends SIGKILL and reaps the process.
func (p *serverProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// stop shuts the server down gracefully.
func (p *serverProc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.t.Errorf("nodb serve did not stop on SIGTERM within 20s\n%s", p.out)
		p.kill()
	}
}

type logLine struct {
	Seq      uint64          `json:"seq"`
	Producer string          `json:"producer"`
	PSeq     uint64          `json:"pseq"`
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload"`
}

// logCat reads the event log with `nodb log cat`.
func logCat(t *testing.T, data string) []logLine {
	t.Helper()
	out, err := exec.Command(nodbBin, "log", "cat", "--data", data).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("nodb log cat: %v\n%s", err, stderr)
	}
	var lines []logLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("nodb log cat printed %q: %v", sc.Bytes(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// sent is what a publish returned, to compare with the log.
type sent struct {
	producer string
	pseq     uint64
	ack      wire.Ack
	payload  string
}

// verifyLog checks that the log holds exactly the published events, each
// once, with seqs 1..n and no gaps, each at the seq its ack named.
func verifyLog(t *testing.T, lines []logLine, events []sent) {
	t.Helper()
	if len(lines) != len(events) {
		t.Fatalf("log has %d events, %d were published", len(lines), len(events))
	}
	type key struct {
		producer string
		pseq     uint64
	}
	byKey := make(map[key]logLine, len(lines))
	next := map[string]uint64{}
	for i, l := range lines {
		if l.Seq != uint64(i+1) {
			t.Fatalf("line %d has seq %d: the log has a gap or is out of order", i+1, l.Seq)
		}
		k := key{l.Producer, l.PSeq}
		if _, dup := byKey[k]; dup {
			t.Fatalf("producer %s pseq %d stored twice", l.Producer, l.PSeq)
		}
		byKey[k] = l
		if l.PSeq != next[l.Producer]+1 {
			t.Fatalf("seq %d: producer %s pseq %d follows pseq %d", l.Seq, l.Producer, l.PSeq, next[l.Producer])
		}
		next[l.Producer] = l.PSeq
	}
	for _, e := range events {
		l, ok := byKey[key{e.producer, e.pseq}]
		if !ok {
			t.Fatalf("producer %s pseq %d was acked (seq %d) but is not in the log", e.producer, e.pseq, e.ack.Seq)
		}
		if l.Seq != e.ack.Seq {
			t.Fatalf("producer %s pseq %d: acked with seq %d, stored at seq %d", e.producer, e.pseq, e.ack.Seq, l.Seq)
		}
		var a, b any
		json.Unmarshal(l.Payload, &a)
		json.Unmarshal([]byte(e.payload), &b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("seq %d: payload %s, published %s", l.Seq, l.Payload, e.payload)
		}
	}
}

// publishAll runs goroutines per client, each publishing n events, and
// returns what every publish returned. progress counts acks as they come.
func publishAll(t *testing.T, ctx context.Context, clients []*Client, goroutines, n int, progress *atomic.Int64) []sent {
	t.Helper()
	var mu sync.Mutex
	var all []sent
	var wg sync.WaitGroup
	errs := make(chan error, len(clients)*goroutines)
	for ci, c := range clients {
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(ci, g int, c *Client) {
				defer wg.Done()
				local := make([]sent, 0, n)
				for j := 0; j < n; j++ {
					payload := fmt.Sprintf(`{"client":%d,"g":%d,"j":%d,"pad":"0123456789abcdef0123456789abcdef"}`, ci, g, j)
					f := c.PublishAsync(ctx, "test/event", json.RawMessage(payload))
					ack, err := f.Wait(ctx)
					if err != nil {
						errs <- fmt.Errorf("client %d goroutine %d event %d (pseq %d): %w", ci, g, j, f.PSeq(), err)
						return
					}
					local = append(local, sent{c.Producer(), f.PSeq(), ack, payload})
					if progress != nil {
						progress.Add(1)
					}
				}
				mu.Lock()
				all = append(all, local...)
				mu.Unlock()
			}(ci, g, c)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return all
}

func dialN(t *testing.T, url string, n int, opts ...Option) []*Client {
	t.Helper()
	var cs []*Client
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, url, opts...)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

func TestServerPipelined(t *testing.T) {
	needServer(t)
	data := t.TempDir()
	srv := startServer(t, data, freeAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients := dialN(t, srv.url(), 2)
	clients = append(clients, dialN(t, srv.url(), 2, WithCBOR())...)
	events := publishAll(t, ctx, clients, 16, 100, nil)
	acks := make([]wire.Ack, len(events))
	for i, e := range events {
		acks[i] = e.ack
	}
	checkUniqueContiguous(t, acks, false)
	for _, c := range clients {
		c.Close()
	}
	srv.stop()
	verifyLog(t, logCat(t, data), events)
}

func TestServerKillAndRestart(t *testing.T) {
	needServer(t)
	data := t.TempDir()
	addr := freeAddr(t)
	srv := startServer(t, data, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var connErrs atomic.Int64
	clients := dialN(t, srv.url(), 4,
		WithBackoff(10*time.Millisecond, 200*time.Millisecond),
		WithConnErrorHandler(func(error) { connErrs.Add(1) }))

	const goroutines, perG = 8, 150
	total := int64(len(clients) * goroutines * perG)
	var progress atomic.Int64
	var events []sent
	done := make(chan struct{})
	go func() {
		defer close(done)
		events = publishAll(t, ctx, clients, goroutines, perG, &progress)
	}()

	// Kill the server twice in mid-stream (SIGKILL: no graceful anything)
	// and restart it on the same data directory and port.
	for _, frac := range []int64{4, 2} {
		for progress.Load() < total/frac {
			select {
			case <-done:
				t.Fatalf("publishing ended before the kill (%d of %d acked)", progress.Load(), total)
			case <-time.After(2 * time.Millisecond):
			}
		}
		srv.kill()
		t.Logf("killed the server after %d of %d acks", progress.Load(), total)
		time.Sleep(300 * time.Millisecond)
		srv = startServer(t, data, addr)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("publishes did not all return: %d of %d acked", progress.Load(), total)
	}
	if t.Failed() {
		return
	}
	dups, resent := 0, uint64(0)
	for _, e := range events {
		if e.ack.Duplicate {
			dups++
		}
	}
	for _, c := range clients {
		st := c.Stats()
		resent += st.Resent
		if st.Connects < 2 {
			t.Errorf("client %s connected %d times; want at least 2 (it lived through a kill)", c.Producer(), st.Connects)
		}
	}
	t.Logf("%d events, %d acked as duplicates, %d re-sends, %d connection errors", len(events), dups, resent, connErrs.Load())
	for _, c := range clients {
		c.Close()
	}
	srv.stop()
	verifyLog(t, logCat(t, data), events)
}
