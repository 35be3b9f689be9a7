package view

import (
	"errors"
	"testing"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/statetree"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// statusOf returns the ABI status err carries (StatusOK for nil).
func statusOf(err error) abi.Status {
	if err == nil {
		return abi.StatusOK
	}
	for _, st := range []abi.Status{abi.StatusNotFound, abi.StatusInvalidPath, abi.StatusInvalidValue, abi.StatusTypeMismatch, abi.StatusTooLarge} {
		if errors.Is(err, st) {
			return st
		}
	}
	return abi.StatusHost
}

// TestStateStatusesMatchTheHarness: the host's state calls (TxState, behind
// the Wasm host functions) and the SDK's MemStore, with which reducers are
// unit-tested natively, answer the same calls with the same ABI statuses
// (abi/ABI.md 6.3). A set at an index past an array's end used to be
// TypeMismatch on the host and InvalidPath in the Harness.
func TestStateStatusesMatchTheHarness(t *testing.T) {
	one := statetree.EncodeCBOR(statetree.Int(1))
	calls := []struct {
		op, path string
		want     abi.Status
	}{
		{"set", "/l", abi.StatusOK},   // /l is set to [] below
		{"set", "/l/0", abi.StatusOK}, // append at the length
		{"set", "/l/-", abi.StatusOK}, // append
		{"set", "/l/1", abi.StatusOK}, // replace
		{"set", "/l/7", abi.StatusInvalidPath},
		{"set", "/l/x", abi.StatusInvalidPath},
		{"set", "/l/0/k", abi.StatusTypeMismatch},
		{"set", "/m/a/b", abi.StatusOK}, // intermediate maps are created
		{"set", "/m/a/b/c", abi.StatusTypeMismatch},
		{"delete", "/l/9", abi.StatusNotFound},
		{"delete", "/m/zz", abi.StatusNotFound},
		{"delete", "/m/a/b", abi.StatusOK},
	}
	var host TxState
	tx := statetree.EmptyMap().Begin()
	host.Reset(tx)
	mem := nodb.NewMemStore()
	empty := statetree.EncodeCBOR(statetree.Array())
	for _, st := range []interface{ Set(string, []byte) error }{&host, mem} {
		if err := st.Set("/l", empty); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range calls[1:] {
		var gotHost, gotMem abi.Status
		switch c.op {
		case "set":
			gotHost, gotMem = statusOf(host.Set(c.path, one)), statusOf(mem.Set(c.path, one))
		case "delete":
			gotHost, gotMem = statusOf(host.Delete(c.path)), statusOf(mem.Delete(c.path))
		}
		if gotHost != c.want || gotMem != c.want {
			t.Errorf("%s %s: host %v, harness %v, want %v", c.op, c.path, gotHost, gotMem, c.want)
		}
	}
}
