package plugins

import (
	"bytes"
	"context"
	"testing"

	"github.com/nodb-dev/nodb/internal/gowasm"
)

// goGuest builds the todos example (a Go guest) for this test.
func goGuest(t *testing.T) []byte {
	t.Helper()
	b, err := gowasm.Module(context.Background(), "", "../examples/todos/reducer")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyData returns the bytes a data section's active i32.const segments
// write into fresh memory.
func applyData(t *testing.T, body []byte) ([]byte, int) {
	t.Helper()
	r := &reader{b: body}
	n := int(r.u32())
	var mem []byte
	for k := 0; k < n; k++ {
		if r.u32() != 0 || r.byte() != 0x41 {
			t.Fatal("not an active i32.const segment")
		}
		off := 0
		for shift := 0; ; shift += 7 {
			b := r.byte()
			off |= int(b&0x7f) << shift
			if b&0x80 == 0 {
				break
			}
		}
		if r.byte() != 0x0b {
			t.Fatal("offset expression")
		}
		size := int(r.u32())
		if need := off + size; need > len(mem) {
			mem = append(mem, make([]byte, need-len(mem))...)
		}
		copy(mem[off:], r.b[r.pos:r.pos+size])
		r.skip(size)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return mem, n
}

// TestMergeDataKeepsMemory: merging a Go module's data segments leaves the
// initial memory byte for byte as it was, with far fewer segments.
func TestMergeDataKeepsMemory(t *testing.T) {
	wasm := goGuest(t)
	r := &reader{b: wasm, pos: 8}
	var data []byte
	for r.pos < len(wasm) {
		id := r.byte()
		size := int(r.u32())
		if id == 11 {
			data = wasm[r.pos : r.pos+size]
		}
		r.skip(size)
	}
	if data == nil {
		t.Fatal("no data section")
	}
	before, nb := applyData(t, data)
	after, na := applyData(t, mergeData(data))
	if !bytes.Equal(before, after) {
		t.Fatal("merged segments write other bytes")
	}
	if na*10 > nb {
		t.Fatalf("%d segments merged into %d: expected far fewer", nb, na)
	}
	t.Logf("%d data segments merged into %d (%d bytes of memory)", nb, na, len(after))
}
