// Package todos is the todo-list reducer of the nodb example: it turns
// todo/* events into the state
//
//	{"todos": {ID: {"text": "...", "done": false}}}
//
// It registers its handlers when imported. The Wasm plugin is the main
// package one directory up; this package is separate so that host-side
// benchmarks can run the same handlers natively.
package todos

import (
	"errors"

	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// Event types.
const (
	Add            = "todo/add"             // {id, text}
	Toggle         = "todo/toggle"          // {id}
	Rename         = "todo/rename"          // {id, text}
	Delete         = "todo/delete"          // {id}
	ClearCompleted = "todo/clear-completed" // {}
)

var errNoID = errors.New("todos: missing id")

// todoID returns the id of the todo an event is about.
func todoID(e nodb.Event) (string, error) {
	id := e.Str("id")
	if id == "" {
		return "", errNoID
	}
	return id, nil
}

func init() {
	nodb.On(Add, func(s *nodb.State, e nodb.Event) error {
		id, err := todoID(e)
		if err != nil {
			return err
		}
		p := nodb.Path("todos", id)
		if s.Has(p) {
			return errors.New("todos: duplicate id " + id)
		}
		return s.SetFields(p, nodb.StrField("text", e.Str("text")), nodb.BoolField("done", false))
	})
	nodb.On(Toggle, func(s *nodb.State, e nodb.Event) error {
		id, err := todoID(e)
		if err != nil {
			return err
		}
		done := nodb.Path("todos", id, "done")
		v := s.View(done)
		if !v.Exists() {
			return nil // toggling a deleted todo is a no-op
		}
		return s.SetBool(done, !v.Bool())
	})
	nodb.On(Rename, func(s *nodb.State, e nodb.Event) error {
		id, err := todoID(e)
		if err != nil {
			return err
		}
		text := nodb.Path("todos", id, "text")
		if !s.Has(text) {
			return nil // renaming a deleted todo is a no-op
		}
		return s.SetStr(text, e.Str("text"))
	})
	nodb.On(Delete, func(s *nodb.State, e nodb.Event) error {
		id, err := todoID(e)
		if err != nil {
			return err
		}
		return s.Delete(nodb.Path("todos", id))
	})
	nodb.On(ClearCompleted, func(s *nodb.State, _ nodb.Event) error {
		all := s.View("/todos") // valid until the next read; Delete is no read
		var done []string
		all.Each(func(id string, t nodb.Value) bool {
			if t.Key("done").Bool() {
				done = append(done, id)
			}
			return true
		})
		for _, id := range done {
			if err := s.Delete(nodb.Path("todos", id)); err != nil {
				return err
			}
		}
		return nil
	})
}
