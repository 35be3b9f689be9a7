package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"time"
)

// The ingest floor: bench/cmd/ackfloor, a bare gorilla WebSocket server that
// acks every publish with no decoding, storage or fsync, driven by the same
// Go SDK client as nodb. It is the cost of the WebSocket round trips alone on
// this machine; nodb's figures are printed as a fraction of it.

func startFloorIngest(ctx context.Context, env *Env) (ingestTarget, error) {
	bin := filepath.Join(env.TmpDir, "ackfloor")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/cmd/ackfloor").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building ackfloor: %v\n%s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &nodbServer{Addr: addr, out: &syncBuffer{}}
	s.cmd = exec.Command(bin, "-addr", addr)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	atCleanup(s.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("ackfloor not ready: %v\n%s", err, s.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &nodbIngest{srv: s}, nil
}
