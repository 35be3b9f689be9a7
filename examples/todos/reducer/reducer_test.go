//go:build !wasip1

package main

import (
	"errors"
	"testing"

	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

func TestTodos(t *testing.T) {
	h := nodb.NewHarness()
	steps := []struct{ typ, payload, want string }{
		{"todo/add", `{"id":"a","text":"milk"}`, `{"todos":{"a":{"done":false,"text":"milk"}}}`},
		{"todo/add", `{"id":"b/c","text":"eggs"}`, `{"todos":{"a":{"done":false,"text":"milk"},"b/c":{"done":false,"text":"eggs"}}}`},
		{"todo/toggle", `{"id":"a"}`, `{"todos":{"a":{"done":true,"text":"milk"},"b/c":{"done":false,"text":"eggs"}}}`},
		{"todo/rename", `{"id":"b/c","text":"bread"}`, `{"todos":{"a":{"done":true,"text":"milk"},"b/c":{"done":false,"text":"bread"}}}`},
		{"todo/toggle", `{"id":"zz"}`, `{"todos":{"a":{"done":true,"text":"milk"},"b/c":{"done":false,"text":"bread"}}}`},
		{"todo/clear-completed", `{}`, `{"todos":{"b/c":{"done":false,"text":"bread"}}}`},
		{"todo/delete", `{"id":"b/c"}`, `{"todos":{}}`},
		{"todo/delete", `{"id":"b/c"}`, `{"todos":{}}`},
		{"other/event", `{"x":1}`, `{"todos":{}}`},
	}
	for _, s := range steps {
		if err := h.Reduce(s.typ, s.payload); err != nil {
			t.Fatalf("%s %s: %v", s.typ, s.payload, err)
		}
		if got := h.JSON(""); got != s.want {
			t.Fatalf("after %s %s:\n got %s\nwant %s", s.typ, s.payload, got, s.want)
		}
	}
}

func TestTodosRejects(t *testing.T) {
	h := nodb.NewHarness()
	if err := h.Reduce("todo/add", `{"text":"no id"}`); err == nil {
		t.Fatal("add without id accepted")
	}
	if err := h.Reduce("todo/add", `{"id":"a","text":"x"}`); err != nil {
		t.Fatal(err)
	}
	err := h.Reduce("todo/add", `{"id":"a","text":"again"}`)
	var rej *nodb.RejectedError
	if !errors.As(err, &rej) || rej.Message != "todos: duplicate id a" {
		t.Fatalf("duplicate add: %v", err)
	}
}

func TestTodosConsumes(t *testing.T) {
	got := nodb.Consumes()
	want := []string{"todo/add", "todo/toggle", "todo/rename", "todo/delete", "todo/clear-completed"}
	if len(got) != len(want) {
		t.Fatalf("consumes %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("consumes %q", got)
		}
	}
}
