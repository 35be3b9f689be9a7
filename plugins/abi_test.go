package plugins_test

import (
	"context"
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
