package main

import (
	"testing"

	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

func TestStatsFollowTodos(t *testing.T) {
	h := nodb.NewHarness()
	if got := nodb.Inputs(); len(got) != 1 || got[0] != Input {
		t.Fatalf("declared inputs %v, want [todos]", got)
	}
	steps := []struct{ ops, want string }{
		{`[{"op":"add","path":"/todos","value":{}}]`,
			`{"done":0,"tags":{},"total":0,"active":0,"completion":0}`},
		{`[{"op":"add","path":"/todos/a","value":{"text":"buy milk #home","done":false}}]`,
			`{"done":0,"tags":{"home":{"done":0,"total":1}},"total":1,"active":1,"completion":0}`},
		{`[{"op":"add","path":"/todos/b","value":{"text":"write report #Work #home.","done":true}}]`,
			`{"done":1,"tags":{"home":{"done":1,"total":2},"work":{"done":1,"total":1}},"total":2,"active":1,"completion":0.5}`},
		{`[{"op":"remove","path":"/todos/a"}]`,
			`{"done":1,"tags":{"home":{"done":1,"total":1},"work":{"done":1,"total":1}},"total":1,"active":0,"completion":1}`},
		{`[{"op":"replace","path":"/todos/b/text","value":"no tags"}]`,
			`{"done":1,"tags":{},"total":1,"active":0,"completion":1}`},
	}
	for i, s := range steps {
		if err := h.Patch(Input, s.ops); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := h.JSON(""); got != s.want {
			t.Fatalf("step %d: state\n got %s\nwant %s", i, got, s.want)
		}
	}
}

func TestTags(t *testing.T) {
	got := Tags("a #Work, #home #work! # #x/y plain")
	want := []string{"work", "home"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Tags = %v, want %v", got, want)
	}
}
