// Command join is a test cascade over two inputs, todos and owners: for
// each owner (or "nobody") the number of open and done todos they own.
package main

import nodb "github.com/nodb-dev/nodb/sdk/guest/go"

func recompute(s *nodb.State, p nodb.Patch) error {
	owners := nodb.Input("owners")
	type count struct{ open, done int64 }
	by := map[string]*count{}
	var names []string
	nodb.Input("todos").View("/todos").Each(func(id string, t nodb.Value) bool {
		o := owners.GetStr("/owners/" + nodb.Escape(id))
		if o == "" {
			o = "nobody"
		}
		c := by[o]
		if c == nil {
			c = &count{}
			by[o] = c
			names = append(names, o)
		}
		if t.Key("done").Bool() {
			c.done++
		} else {
			c.open++
		}
		return true
	})
	out := map[string]any{}
	for _, n := range names {
		out[n] = map[string]any{"open": by[n].open, "done": by[n].done}
	}
	return s.Set("/by_owner", out)
}

func init() {
	nodb.OnPatch("todos", recompute)
	nodb.OnPatch("owners", recompute)
}

func main() {}
