package view

import (
	"testing"

	"github.com/nodb-dev/nodb/abi"
)

// TestCheckpointsThinOut: however long a view runs, it keeps at most
// maxCheckpoints states, the newest denseCheckpoints at every epoch and the
// very first one, with older ones spaced in proportion to their age, so
// that a read of any past seq starts from a checkpoint at most about half
// its age before it.
func TestCheckpointsThinOut(t *testing.T) {
	var cs []current
	for _, epochs := range []int{10, 40, 1000, 5000} {
		cs = cs[:0]
		for e := 0; e <= epochs; e++ {
			cs = appendCkpt(cs, current{seq: uint64(e) * abi.EpochSize})
		}
		if len(cs) > maxCheckpoints {
			t.Fatalf("%d epochs: %d checkpoints kept, want at most %d", epochs, len(cs), maxCheckpoints)
		}
		if cs[0].seq != 0 {
			t.Fatalf("%d epochs: the first checkpoint (seq 0) was dropped", epochs)
		}
		newest := cs[len(cs)-1].seq
		if newest != uint64(epochs)*abi.EpochSize {
			t.Fatalf("%d epochs: newest checkpoint at %d", epochs, newest)
		}
		dense := min(denseCheckpoints, len(cs))
		for i := len(cs) - dense + 1; i < len(cs); i++ {
			if cs[i].seq-cs[i-1].seq != abi.EpochSize {
				t.Fatalf("%d epochs: the newest %d checkpoints are not one epoch apart: %d then %d", epochs, dense, cs[i-1].seq, cs[i].seq)
			}
		}
		for i := 1; i < len(cs); i++ {
			gap, age := cs[i].seq-cs[i-1].seq, newest-cs[i-1].seq
			if gap > abi.EpochSize && gap > age*2/3 {
				t.Fatalf("%d epochs: gap of %d seqs after checkpoint %d (age %d): %v", epochs, gap, cs[i-1].seq, age, seqs(cs))
			}
		}
	}
}

func seqs(cs []current) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.seq / abi.EpochSize
	}
	return out
}
