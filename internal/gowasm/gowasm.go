// Package gowasm builds Go packages into nodb reducer modules the way the
// Makefile and sdk/guest/go document it (GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared), for the tests and benchmarks that need a Go guest.
package gowasm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds the Go package pkg, a path as `go build` takes it from
// directory dir ("" for the current one), into the module file out. The
// error carries the compiler's output.
func Build(ctx context.Context, dir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for wasip1: %v\n%s", pkg, err, msg)
	}
	return nil
}

// Module is Build into a temporary file, returning the module's bytes.
func Module(ctx context.Context, dir, pkg string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "nodb-gowasm")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "module.wasm")
	if err := Build(ctx, dir, pkg, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}
