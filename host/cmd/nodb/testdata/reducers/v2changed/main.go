// Command v2changed is the todos reducer with a change of results: every
// added todo also gets "v": 2. Tests build it (GOOS=wasip1 GOARCH=wasm
// go build -buildmode=c-shared) to hot-swap a view to a version that changes
// its state.
package main

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

func path(e nodb.Event) (string, error) {
	id := e.Str("id")
	if id == "" {
		return "", errNoID
	}
	return "/todos/" + nodb.Escape(id), nil
}

func init() {
	nodb.On(Add, func(s *nodb.State, e nodb.Event) error {
		p, err := path(e)
		if err != nil {
			return err
		}
		if s.Has(p) {
			return errors.New("todos: duplicate id " + e.Str("id"))
		}
		return s.Set(p, nodb.Map("text", e.Str("text"), "done", false, "v", 2))
	})
	nodb.On(Toggle, func(s *nodb.State, e nodb.Event) error {
		p, err := path(e)
		if err != nil {
			return err
		}
		if !s.Has(p) {
			return nil // toggling a deleted todo is a no-op
		}
		return s.Set(p+"/done", !s.GetBool(p+"/done"))
	})
	nodb.On(Rename, func(s *nodb.State, e nodb.Event) error {
		p, err := path(e)
		if err != nil {
			return err
		}
		if !s.Has(p) {
			return nil
		}
		return s.Set(p+"/text", e.Str("text"))
	})
	nodb.On(Delete, func(s *nodb.State, e nodb.Event) error {
		p, err := path(e)
		if err != nil {
			return err
		}
		return s.Delete(p)
	})
	nodb.On(ClearCompleted, func(s *nodb.State, _ nodb.Event) error {
		all, ok := s.Get("/todos")
		if !ok {
			return nil
		}
		var done []string
		all.Each(func(id string, t nodb.Value) bool {
			if t.Key("done").Bool() {
				done = append(done, id)
			}
			return true
		})
		for _, id := range done {
			if err := s.Delete("/todos/" + nodb.Escape(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

func main() {}
