package view

import (
	"bytes"
	"errors"
	"strings"
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

// nestedArrays returns the CBOR of n arrays, each the only element of the
// one around it, the innermost empty: a value nested n deep.
func nestedArrays(n int) []byte {
	b := bytes.Repeat([]byte{0x81}, n)
	b[n-1] = 0x80
	return b
}

// deepPath returns a path of n tokens under the key first.
func deepPath(first string, n int) string {
	return "/" + first + strings.Repeat("/d", n-1)
}

// TestStateStatusesMatchTheHarness: the host's state calls (TxState, behind
// the Wasm host functions) and the SDK's MemStore, with which reducers are
// unit-tested natively, answer the same calls with the same ABI statuses
// (abi/ABI.md 6.3), and leave the same state. A set at an index past an
// array's end used to be TypeMismatch on the host and InvalidPath in the
// Harness; a set whose path tokens and value nesting add up to more than
// the state's limit (abi.MaxStateDepth) was TooLarge on the host and
// stored in the Harness. The host let a set of the root store a scalar or
// an array, which the Harness refuses (StatusTypeMismatch), and answered
// a delete of the root with StatusTypeMismatch instead of emptying it. The
// Harness stored maps with duplicate keys or a forbidden key (__proto__,
// constructor, prototype), which the host refuses (StatusInvalidValue).
func TestStateStatusesMatchTheHarness(t *testing.T) {
	one := statetree.EncodeCBOR(statetree.Int(1))
	// Within the limits of the path and of the value (abi.MaxDepth), but
	// 1 over the state's: an empty array inside MaxDepth arrays is a
	// value MaxDepth+1 deep.
	tooDeep, deepest := nestedArrays(abi.MaxDepth+1), deepPath("deep", abi.MaxDepth)
	calls := []struct {
		op, path string
		value    []byte // nil: the integer 1
		want     abi.Status
	}{
		{"set", "/l", nil, abi.StatusOK},   // /l is set to [] below
		{"set", "/l/0", nil, abi.StatusOK}, // append at the length
		{"set", "/l/-", nil, abi.StatusOK}, // append
		{"set", "/l/1", nil, abi.StatusOK}, // replace
		{"set", "/l/7", nil, abi.StatusInvalidPath},
		{"set", "/l/x", nil, abi.StatusInvalidPath},
		{"set", "/l/0/k", nil, abi.StatusTypeMismatch},
		{"set", "/m/a/b", nil, abi.StatusOK}, // intermediate maps are created
		{"set", "/m/a/b/c", nil, abi.StatusTypeMismatch},
		{"set", "/n", []byte{0xf6}, abi.StatusOK},
		{"set", "/n/a/b", nil, abi.StatusOK}, // a null in the way is replaced by maps
		{"delete", "/l/9", nil, abi.StatusNotFound},
		{"delete", "/m/zz", nil, abi.StatusNotFound},
		{"delete", "/m/a/b", nil, abi.StatusOK},
		// The state's depth: path tokens + value nesting <= MaxStateDepth.
		{"set", deepest, tooDeep, abi.StatusTooLarge}, // creates nothing
		{"set", deepest, nestedArrays(abi.MaxDepth), abi.StatusOK},
		{"set", deepest, tooDeep, abi.StatusTooLarge},                             // replaces nothing
		{"set", deepPath("deep", abi.MaxDepth-1), tooDeep, abi.StatusOK},          // 1 token less
		{"set", deepPath("l", abi.MaxDepth), tooDeep, abi.StatusInvalidPath},      // /l/d: a bad index comes first
		{"set", deepPath("m", abi.MaxDepth-1), tooDeep, abi.StatusOK},             // intermediate maps in /m
		{"set", deepPath("l/0", abi.MaxDepth-1), tooDeep, abi.StatusTypeMismatch}, // through the scalar /l/0
		{"set", deepPath("l/9", abi.MaxDepth-1), tooDeep, abi.StatusInvalidPath},  // through a missing item
		// The root is always a map.
		{"set", "", nil, abi.StatusTypeMismatch},
		{"set", "", statetree.EncodeCBOR(statetree.Array()), abi.StatusTypeMismatch},
		{"set", "/m", nil, abi.StatusOK}, // still a map
		// Values: no duplicate or forbidden keys, at any depth.
		{"set", "/v", []byte{0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02}, abi.StatusInvalidValue},
		{"set", "/v", append([]byte{0x81, 0xa1, 0x69}, "__proto__\x01"...), abi.StatusInvalidValue},
		{"set", "/v", append([]byte{0xa1, 0x6b}, "constructor\xf6"...), abi.StatusInvalidValue},
		{"set", "/v", append([]byte{0xa1, 0x69}, "prototype\xf6"...), abi.StatusInvalidValue},
		{"set", "/v", append([]byte{0xa1, 0x63}, "__p\xf6"...), abi.StatusOK},
		{"delete", "", nil, abi.StatusOK}, // empties the root
		{"delete", "", nil, abi.StatusOK}, // an empty root too
		{"set", "/m", nil, abi.StatusOK},
	}
	if abi.ValidatePath(deepest) != abi.StatusOK || abi.ValidateValue(tooDeep) != abi.StatusOK {
		t.Fatal("the too deep set is not one a plugin can make")
	}
	if statetree.MaxDepth != abi.MaxStateDepth {
		t.Fatalf("statetree.MaxDepth %d, abi.MaxStateDepth %d", statetree.MaxDepth, abi.MaxStateDepth)
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
			v := c.value
			if v == nil {
				v = one
			}
			gotHost, gotMem = statusOf(host.Set(c.path, v)), statusOf(mem.Set(c.path, v))
		case "delete":
			gotHost, gotMem = statusOf(host.Delete(c.path)), statusOf(mem.Delete(c.path))
		}
		if gotHost != c.want || gotMem != c.want {
			t.Errorf("%s %.40s (%d tokens): host %v, harness %v, want %v", c.op, c.path, strings.Count(c.path, "/"), gotHost, gotMem, c.want)
		}
		hostState, _, _ := host.Get("")
		memState, _, _ := mem.Get("")
		if !bytes.Equal(hostState, memState) {
			t.Fatalf("%s %.40s: the states differ: host %.80x, harness %.80x", c.op, c.path, hostState, memState)
		}
	}
}
