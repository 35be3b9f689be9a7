package plugins

import (
	"strconv"
	"testing"
)

// TestTypeSet checks the per-event type lookup in its three forms (every
// type, a list, a map) against a plain search of the declared types.
func TestTypeSet(t *testing.T) {
	if s := newTypeSet(nil); !s.has("x") || !s.has("") {
		t.Error("nil does not mean every type")
	}
	types := []string{}
	for n := 0; n <= 2*typeSetList; n++ {
		s := newTypeSet(types)
		if s.all {
			t.Fatalf("%d types: every type", n)
		}
		probes := append([]string{"", "todo/ad", "todo/add0", "todo/ade"}, types...)
		for _, p := range probes {
			want := false
			for _, c := range types {
				want = want || c == p
			}
			if got := s.has(p); got != want {
				t.Fatalf("%d types %q: has(%q) = %v", n, types, p, got)
			}
		}
		types = append(types, "todo/ad"+strconv.Itoa(n)[:1]+strconv.Itoa(n))
	}
}

// BenchmarkTypeSet is the per-event lookup for the todos reducer's five
// types, against the map it replaced.
func BenchmarkTypeSet(b *testing.B) {
	types := []string{"todo/add", "todo/toggle", "todo/rename", "todo/delete", "todo/clear-completed"}
	events := []string{"todo/add", "todo/toggle", "todo/rename", "todo/delete", "todo/toggle", "todo/add", "todo/rename", "todo/toggle", "todo/add", "todo/add"}
	for k := range events { // not the declared strings themselves, as events from a log are not
		events[k] = string([]byte(events[k]))
	}
	b.Run("set", func(b *testing.B) {
		s := newTypeSet(types)
		for k := 0; b.Loop(); k++ {
			if !s.has(events[k%len(events)]) {
				b.Fatal("miss")
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		m := map[string]struct{}{}
		for _, t := range types {
			m[t] = struct{}{}
		}
		for k := 0; b.Loop(); k++ {
			if _, ok := m[events[k%len(events)]]; !ok {
				b.Fatal("miss")
			}
		}
	})
}
