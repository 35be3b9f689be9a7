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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	cleanupMu  sync.Mutex
	cleanupFns []func()
)

// atCleanup registers f to run when the whole run ends (also on Ctrl-C), in
// reverse order. Benchmarks should still clean up after themselves.
func atCleanup(f func()) {
	cleanupMu.Lock()
	cleanupFns = append(cleanupFns, f)
	cleanupMu.Unlock()
}

func cleanup() {
	cleanupMu.Lock()
	fns := cleanupFns
	cleanupFns = nil
	cleanupMu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Nodb returns the nodb binary: -nodb, else bin/nodb, else one built now.
func (e *Env) Nodb(ctx context.Context) (string, error) {
	if e.NodbBin != "" {
		return e.NodbBin, nil
	}
	// Always built from the source in front of us (the Go build cache makes
	// this quick): a bin/nodb left from an older checkout would measure old
	// code.
	p := filepath.Join(e.TmpDir, "nodb")
	e.Logf("go build -o %s ./host/cmd/nodb", p)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", p, "./host/cmd/nodb")
	cmd.Dir = e.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nodb: %v\n%s", err, out)
	}
	e.NodbBin = p
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// nodbServer is a `nodb serve` child process on a temp data directory.
type nodbServer struct {
	Addr string
	Data string
	cmd  *exec.Cmd
	out  *syncBuffer
	once sync.Once
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNodb starts `nodb serve` and waits until /readyz answers 200.
func (e *Env) startNodb(ctx context.Context, extraArgs ...string) (*nodbServer, error) {
	bin, err := e.Nodb(ctx)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if a := os.Getenv("NODB_BENCH_ADDR"); a != "" {
		addr = a // a fixed address, to watch the server's /metrics during a run
	}
	data, err := os.MkdirTemp(e.TmpDir, "nodb-data-")
	if err != nil {
		return nil, err
	}
	s := &nodbServer{Addr: addr, Data: data, out: &syncBuffer{}}
	args := append([]string{"serve", "--data", data, "--addr", addr, "--log-level", "warn"}, extraArgs...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	atCleanup(s.Stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("nodb serve not ready: %v\n%s", err, s.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the WebSocket endpoint.
func (s *nodbServer) URL() string { return "ws://" + s.Addr + "/v1/ws" }

// Pid is the server's process id.
func (s *nodbServer) Pid() int { return s.cmd.Process.Pid }

// Stop shuts the server down (SIGTERM, then SIGKILL after 15 s) and removes
// its data directory.
func (s *nodbServer) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(s.Data)
	})
}

// cpuSelf is the CPU time (user + system) this process has used.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const clockTicks = 100 // USER_HZ on Linux

// procCPU reads utime+stime and the parent pid of one process.
func procCPU(pid int) (time.Duration, int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is state (field 3); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ := strconv.Atoi(f[1])
	// The first field of schedstat is the exact CPU time in ns, per thread;
	// stat's utime and stime are in 10 ms ticks, too coarse for hundreds of
	// processes sampled over a second (one per postgres backend).
	if tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task"); err == nil && len(tasks) > 0 {
		var sum time.Duration
		okAll := true
		for _, t := range tasks {
			ss, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/schedstat")
			fs := strings.Fields(string(ss))
			if err != nil || len(fs) == 0 {
				okAll = false
				break
			}
			ns, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				okAll = false
				break
			}
			sum += time.Duration(ns)
		}
		if okAll {
			return sum, ppid, true
		}
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, ppid, true
}

// procTreeCPU is the CPU time of root and its direct children, by pid (so
// a sample at the end can be compared per process with one at the start).
func procTreeCPU(root int) map[int]time.Duration {
	m := map[int]time.Duration{}
	if d, _, ok := procCPU(root); ok {
		m[root] = d
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		if d, ppid, ok := procCPU(pid); ok && ppid == root {
			m[pid] = d
		}
	}
	return m
}

// cpuDelta sums the CPU each process used between two procTreeCPU samples.
func cpuDelta(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, a := range after {
		d += a - before[pid]
	}
	return d
}
