// Package conformance holds the tests of the C guest SDK (sdk/guest/c)
// against the ABI conformance vectors, run through the real host with
// testdata/conform.c, and CheckBuild, which tests of checked-in C modules
// use to check that they are current.
package conformance

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CheckBuild runs script (a build script of a C module that takes the
// output path as its argument) and fails t if the module it builds differs
// from have, the checked-in module. It skips when clang or wasm-ld is
// missing, or when the local clang is not the one that built have (named in
// its producers section): another compiler version may emit other bytes.
func CheckBuild(t testing.TB, have []byte, script string) {
	t.Helper()
	for _, tool := range []string{"clang", "wasm-ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ver, err := exec.Command("clang", "--version").Output()
	if err != nil {
		t.Skipf("clang --version: %v", err)
	}
	local := strings.TrimSpace(strings.SplitN(string(ver), "\n", 2)[0])
	built := Producer(have)
	if built == "" {
		t.Fatal("the checked-in module has no producers section naming its compiler")
	}
	if !strings.HasPrefix(local, built) {
		t.Skipf("the checked-in module was built by %q, this machine has %q: not comparing", built, local)
	}
	out := filepath.Join(t.TempDir(), "out.wasm")
	if msg, err := exec.Command(script, out).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, msg)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, have) {
		t.Fatalf("the checked-in module (%d bytes) differs from what %s builds now (%d bytes): run make examples-c and commit the result", len(have), script, len(fresh))
	}
}

// Producer returns "NAME version VERSION" of the clang entry of the
// processed-by field of a Wasm module's producers section ("Debian clang
// version 14.0.6", the first line of that clang's --version), or "".
func Producer(wasm []byte) string {
	if len(wasm) < 8 {
		return ""
	}
	b := wasm[8:]
	uleb := func() uint64 {
		var v uint64
		for s := 0; len(b) > 0; s += 7 {
			c := b[0]
			b = b[1:]
			v |= uint64(c&0x7f) << s
			if c < 0x80 {
				break
			}
		}
		return v
	}
	str := func() string {
		n := uleb()
		if n > uint64(len(b)) {
			b = nil
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	for len(b) > 0 {
		id := b[0]
		b = b[1:]
		size := uleb()
		if size > uint64(len(b)) {
			return ""
		}
		sec := b[:size]
		rest := b[size:]
		if id == 0 {
			b = sec
			if str() == "producers" {
				for fields := uleb(); fields > 0; fields-- {
					field := str()
					for n := uleb(); n > 0; n-- {
						name, version := str(), str()
						if field == "processed-by" && strings.Contains(name, "clang") {
							return name + " version " + version
						}
					}
				}
			}
		}
		b = rest
	}
	return ""
}
