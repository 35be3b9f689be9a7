package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/internal/gowasm"
)

// nodbBin is the nodb binary built once for every test of this package: the
// tests drive real processes, as a user would.
var nodbBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nodb-bin-")
	if err != nil {
		panic(err)
	}
	nodbBin = filepath.Join(dir, "nodb")
	out, err := exec.Command("go", "build", "-o", nodbBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building nodb: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildGuest builds the Go guest pkg (a path from the repository's root)
// once per test binary, as NAME.wasm next to the nodb binary.
func buildGuest(t *testing.T, name, pkg string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(nodbBin), name+".wasm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if err := gowasm.Build(context.Background(), "../../..", pkg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running `nodb serve`.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe starts `nodb serve` on dir and addr with extra args and waits
// until /readyz says ready.
func startServe(t testing.TB, dir, addr string, args ...string) *proc {
	t.Helper()
	return startServeOn(t, testHTTP, "http://"+addr+"/readyz", dir, addr, args...)
}

// startServeOn is startServe polling readyURL with hc (HTTPS for a host
// with --tls-cert).
func startServeOn(t testing.TB, hc *http.Client, readyURL, dir, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, addr: addr, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(nodbBin, append([]string{"serve", "--data", dir, "--addr", addr, "--log-level", "debug"}, args...)...)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if t.Failed() {
			// Ask the Go runtime for every goroutine's stack before killing,
			// so a hang in CI can be diagnosed from the log.
			p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(3 * time.Second):
			}
			out := p.stderr.String()
			if len(out) > 64<<10 {
				out = out[len(out)-64<<10:]
			}
			t.Logf("nodb serve output (last 64 KiB):\n%s", out)
		}
		p.kill()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("nodb serve exited before ready: %v\n%s", p.err, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodb serve not ready at %s after 30s: %v\n%s", readyURL, err, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

func (p *proc) term() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(20 * time.Second):
		p.kill()
		return fmt.Errorf("nodb serve did not stop within 20s of SIGTERM")
	}
}

// run runs the nodb CLI and returns stdout, stderr and the exit code.
func run(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	return runWith(t, nil, args...)
}

// runWith runs nodb with args and the extra environment variables env and
// returns its stdout, stderr and exit code.
func runWith(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodbBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running nodb %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}
