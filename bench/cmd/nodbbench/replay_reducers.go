package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"

	// The todos handlers, registered with the guest SDK; built natively here,
	// the SDK's stub host (nodb.Harness) runs them.
	_ "github.com/nodb-dev/nodb/examples/todos/reducer/todos"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// Native reducers for the replay benchmark. Both run inside the same view
// engine (view.View) over the same host state tree as the Wasm reducer; only
// the reducer differs.

// nativeReducer runs the todos handlers of examples/todos/reducer/todos
// compiled natively: the guest SDK's Harness encodes each record into the
// ABI event frame (payload JSON to CBOR, as the host does for Wasm) and
// dispatches it through the SDK's own nodb_reduce path; the handlers' state
// calls go to view.TxState, the very code behind the Wasm host functions:
// values cross as CBOR, because that is the SDK's Store contract and the
// ABI's.
type nativeReducer struct {
	h        *nodb.Harness
	st       view.TxState
	consumes map[string]bool
}

func newNativeReducer() *nativeReducer {
	r := &nativeReducer{consumes: map[string]bool{}}
	r.h = &nodb.Harness{Store: &r.st}
	for _, t := range nodb.Consumes() {
		r.consumes[t] = true
	}
	return r
}

func (r *nativeReducer) Consumes(t string) bool { return r.consumes[t] }
func (r *nativeReducer) Hash() string           { return "native-todos" }
func (r *nativeReducer) Close() error           { return nil }

func (r *nativeReducer) Reduce(_ context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	r.st.Reset(tx)
	err := r.h.ReduceEvent(rec.Seq, rec.Time, rec.Producer, rec.PSeq, rec.Type, rec.Payload)
	r.st.Reset(nil)
	return err
}

// directReducer is the todos reducer hand-written against the state tree:
// payload parsed with statetree.FromJSON, paths built as statetree.Path, no
// frame, no CBOR, no path strings. The floor of what any reducer can cost in
// this view engine.
type directReducer struct {
	todos statetree.Path // "/todos"
	path  statetree.Path // scratch: /todos/ID[/field]
	done  []string
}

func newDirectReducer() *directReducer {
	return &directReducer{todos: statetree.Path{"todos"}, path: make(statetree.Path, 3)}
}

func (r *directReducer) Consumes(t string) bool {
	switch t {
	case "todo/add", "todo/toggle", "todo/rename", "todo/delete", "todo/clear-completed":
		return true
	}
	return false
}
func (r *directReducer) Hash() string { return "direct-todos" }
func (r *directReducer) Close() error { return nil }

var (
	falseV = statetree.Bool(false)
	trueV  = statetree.Bool(true)
)

func (r *directReducer) Reduce(_ context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if rec.Type == "todo/clear-completed" {
		all, ok := tx.Get(r.todos)
		if !ok {
			return nil
		}
		r.done = r.done[:0]
		all.Range(func(id string, t statetree.Value) bool {
			if d, _ := t.Lookup("done"); d.Bool() {
				r.done = append(r.done, id)
			}
			return true
		})
		for _, id := range r.done {
			if err := tx.Delete(statetree.Path{"todos", id}); err != nil {
				return err
			}
		}
		return nil
	}
	pl, err := statetree.FromJSON(rec.Payload)
	if err != nil {
		return err
	}
	idv, _ := pl.Lookup("id")
	id := idv.Str()
	if id == "" {
		return errors.New("todos: missing id")
	}
	p := r.path[:2]
	p[0], p[1] = "todos", id
	switch rec.Type {
	case "todo/add":
		if _, ok := tx.Get(p); ok {
			return fmt.Errorf("todos: duplicate id %s", id)
		}
		text, _ := pl.Lookup("text")
		todo, err := statetree.Map(map[string]statetree.Value{"text": statetree.String(text.Str()), "done": falseV})
		if err != nil {
			return err
		}
		return tx.Set(p, todo)
	case "todo/toggle":
		cur, ok := tx.Get(p)
		if !ok {
			return nil
		}
		d, _ := cur.Lookup("done")
		nv := trueV
		if d.Bool() {
			nv = falseV
		}
		return tx.Set(append(p, "done"), nv)
	case "todo/rename":
		if _, ok := tx.Get(p); !ok {
			return nil
		}
		text, _ := pl.Lookup("text")
		return tx.Set(append(p, "text"), statetree.String(text.Str()))
	case "todo/delete":
		return tx.Delete(p)
	}
	return nil
}

var (
	_ view.Reducer = (*nativeReducer)(nil)
	_ view.Reducer = (*directReducer)(nil)
)

// timedReducer wraps a reducer and adds up the time spent in Reduce per
// event type (the -replay.breakdown pass; the clock reads cost ~50 ns an
// event, so this pass is not the headline number).
type timedReducer struct {
	view.Reducer
	byType map[string]*typeTime
}

type typeTime struct {
	n   int
	dur time.Duration
}

func newTimedReducer(r view.Reducer) *timedReducer {
	return &timedReducer{Reducer: r, byType: map[string]*typeTime{}}
}

func (r *timedReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	t0 := time.Now()
	err := r.Reducer.Reduce(ctx, rec, tx)
	d := time.Since(t0)
	tt := r.byType[rec.Type]
	if tt == nil {
		tt = &typeTime{}
		r.byType[rec.Type] = tt
	}
	tt.n++
	tt.dur += d
	return err
}
