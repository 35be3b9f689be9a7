// Command stats is the todo-stats cascade of the todos example: a view
// derived from the todos view, deployable by a third party who may read
// todos but not publish. It keeps
//
//	{"total": 3, "done": 1, "active": 2, "completion": 0.3333333333333333,
//	 "tags": {"work": {"total": 2, "done": 1}, "home": {"total": 1, "done": 0}}}
//
// where tags are the #words of each todo's text, lower-cased. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o todo-stats.wasm ./examples/todos/stats
//
// The state is a function of the todos view's state (recomputed from it on
// each change of /todos), as cascades must be: the host may deliver one
// catch-up patch instead of many (abi/ABI.md, section 13).
package main

import (
	"sort"
	"strings"

	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// Input is the upstream view.
const Input = "todos"

type tagCount struct{ total, done int64 }

// Stats computes the statistics of a todos map (id → {text, done}).
func Stats(todos nodb.Value) nodb.MapValue {
	var total, done int64
	tags := map[string]*tagCount{}
	todos.Each(func(_ string, t nodb.Value) bool {
		total++
		d := t.Key("done").Bool()
		if d {
			done++
		}
		for _, tag := range Tags(t.Key("text").Str()) {
			c := tags[tag]
			if c == nil {
				c = &tagCount{}
				tags[tag] = c
			}
			c.total++
			if d {
				c.done++
			}
		}
		return true
	})
	completion := 0.0
	if total > 0 {
		completion = float64(done) / float64(total)
	}
	tm := make(map[string]any, len(tags))
	for k, c := range tags {
		tm[k] = map[string]any{"total": c.total, "done": c.done}
	}
	return nodb.Map("total", total, "done", done, "active", total-done, "completion", completion, "tags", tm)
}

// Tags returns the distinct #tags of a todo's text, lower-cased, without
// trailing punctuation.
func Tags(text string) []string {
	var out []string
	for _, w := range strings.Fields(text) {
		if len(w) < 2 || w[0] != '#' {
			continue
		}
		t := strings.ToLower(strings.TrimRight(w[1:], ".,;:!?)\"'"))
		if t == "" || strings.ContainsAny(t, "/~") {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}

// Write stores stats key by key, so the view's patches name only what
// changed (setting an equal value records nothing).
func Write(s *nodb.State, stats nodb.MapValue) error {
	for i := 0; i+1 < len(stats); i += 2 {
		k := stats[i].(string)
		if k == "tags" {
			continue
		}
		if err := s.Set(nodb.Path(k), stats[i+1]); err != nil {
			return err
		}
	}
	tags := stats[len(stats)-1].(map[string]any)
	for _, old := range s.Keys("/tags") {
		if _, ok := tags[old]; !ok {
			if err := s.Delete(nodb.Path("tags", old)); err != nil {
				return err
			}
		}
	}
	if len(tags) == 0 && !s.Has("/tags") {
		return s.Set("/tags", nodb.Map())
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same ops in the same order on every run
	for _, k := range keys {
		if err := s.Set(nodb.Path("tags", k), tags[k]); err != nil {
			return err
		}
	}
	return nil
}

func init() {
	nodb.OnPatch(Input, func(s *nodb.State, p nodb.Patch) error {
		if !p.Touches("/todos") {
			return nil
		}
		return Write(s, Stats(nodb.Input(Input).View("/todos")))
	})
}

func main() {}
