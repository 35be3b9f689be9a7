package plugins_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/plugins"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// TestDeclarationLimitsInEveryInstance: the limits of consume and input
// (ABI.md 6.1, 13.1) hold in every instance, not only in the one the host
// makes at load to learn the declarations, and in every epoch's fresh guest;
// re-declaring an input is not a new declaration, even at the limit.
func TestDeclarationLimitsInEveryInstance(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	m := compile(t, r, "declare")
	if got := m.Info().Inputs; len(got) != abi.MaxInputs {
		t.Fatalf("inputs %q, want %d", got, abi.MaxInputs)
	}
	i := instance(t, m, plugins.InstanceConfig{})
	st := nodb.NewMemStore()
	for _, seq := range []uint64{1, 2, abi.EpochSize + 1} {
		if err := i.Reduce(context.Background(), ev(seq, abi.TypePatch, "[]"), st); err != nil {
			t.Errorf("seq %d: %v", seq, err)
		}
	}
}

// scribbler is a State that reuses one buffer for what Get returns and
// writes over it on every call, as the State contract allows (the host
// copies a value out before its next call into State).
type scribbler struct {
	st  *nodb.MemStore
	buf []byte
}

func (s *scribbler) scribble() {
	for k := range s.buf {
		s.buf[k] = 0xff
	}
}

func (s *scribbler) Get(p string) ([]byte, bool, error) {
	s.scribble()
	v, ok, err := s.st.Get(p)
	s.buf = append(s.buf[:0], v...)
	return s.buf, ok, err
}

func (s *scribbler) Has(p string) (bool, error) { s.scribble(); return s.st.Has(p) }

func (s *scribbler) Set(p string, v []byte) error { s.scribble(); return s.st.Set(p, v) }

func (s *scribbler) Delete(p string) error { s.scribble(); return s.st.Delete(p) }

// TestRetryKeepsItsValue: the value kept for the retry of a state_get whose
// buffer was too small is the value read, even when the State reused its
// buffer for other calls in between (view.TxState does: a state_get of a
// value over 16 MiB in between used to hand the retry that value's first
// bytes).
func TestRetryKeepsItsValue(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "retry"), plugins.InstanceConfig{})
	if err := i.Reduce(context.Background(), ev(1, "x", ""), &scribbler{st: nodb.NewMemStore()}); err != nil {
		t.Fatal(err)
	}
}

// TestInitializeFailsAtALaterEpoch: an _initialize that fails in the guest
// made for a later epoch (not at load) fails the event that needed the
// guest as a trap, and the instance is unusable afterwards (ABI.md 8).
func TestInitializeFailsAtALaterEpoch(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "initepoch"), plugins.InstanceConfig{View: "test"})
	st := nodb.NewMemStore()
	if err := i.Reduce(context.Background(), ev(1, "x", ""), st); err != nil {
		t.Fatal(err)
	}
	if te := trapAt(t, i, ev(abi.EpochSize+1, "x", "")); !strings.Contains(te.Error(), "_initialize failed") {
		t.Errorf("trap: %v", te)
	}
}

// TestWASIEdges: what ABI.md 9.2 says of WASI calls outside the common
// path: a WASI function checks only the memory it reads or writes.
func TestWASIEdges(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	m := compile(t, r, "wasiedge")
	for seq, want := range map[uint64]int32{1: 0, 2: 21, 3: 0, 4: 28, 5: 28, 6: 8, 7: 0, 8: 8} {
		err := instance(t, m, plugins.InstanceConfig{}).Reduce(context.Background(), ev(seq, "x", ""), nodb.NewMemStore())
		var re *plugins.ReducerError
		switch {
		case err == nil && want == 0:
		case errors.As(err, &re) && re.Status == want:
		default:
			t.Errorf("case %d: %v, want errno %d", seq, err, want)
		}
	}
}

// TestFdWriteIsBounded: fd_write handles at most 16 MiB a call and says so
// in nwritten (a short write, which writers retry), so one call cannot keep
// the host busy past the time limit, which only guest code can notice.
func TestFdWriteIsBounded(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "bigwrite"), plugins.InstanceConfig{})
	if err := i.Reduce(context.Background(), ev(1, "x", ""), nodb.NewMemStore()); err != nil {
		t.Fatal(err)
	}
}
