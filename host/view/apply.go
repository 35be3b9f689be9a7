package view

import (
	"context"
	"errors"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// A runner applies runs of records to a state in one statetree transaction
// per run, which is what makes replay fast: nodes the run made are edited
// in place by its later events instead of being copied again for each, and
// a BatchReducer enters its guest once per run. Nobody can observe the
// states between the events of a run (the view publishes the state at the
// end of the run), so only the ops of each event are kept; a rejected
// event's changes are rolled back within the transaction (Tx.Rollback) and
// the events after it go on from the state before it, exactly as if each
// event had had a transaction of its own.
type runner struct {
	red   Reducer
	batch BatchReducer // red, if it is one

	consumed []*eventlog.Record // scratch: the run's records the reducer consumes
	at       []int              // their indices in the run
}

func newRunner(red Reducer) *runner {
	r := &runner{red: red}
	r.batch, _ = red.(BatchReducer)
	return r
}

// runEnd returns the length of the run starting at recs[0]: up to and
// including the first record at an epoch boundary (where views keep a
// checkpoint of the state, so the state there must exist), at most max.
func runEnd(recs []eventlog.Record, max int) int {
	n := min(len(recs), max)
	for i := range n {
		if recs[i].Seq%abi.EpochSize == 0 {
			return i + 1
		}
	}
	return n
}

// outcome is what one record of a run did.
type outcome struct {
	ops      []statetree.Op // the changes (nil: none)
	rejected error          // the reducer's rejection (wraps ErrRejected), or nil
}

// apply applies recs, in order, to tx; the caller commits tx afterwards.
// emit is called for every record applied, in order, with its outcome
// (records of types the reducer does not consume are applied with no ops).
// apply stops at the first record whose reduction fails for another reason
// than a rejection: n is the number of records applied before it and err
// its error, and tx holds the state after recs[:n] (the failed event's
// changes are rolled back). Without a failure, n is len(recs) and err nil.
//
// The ops emit receives stay valid after the run (the transaction never
// writes over them again).
func (r *runner) apply(ctx context.Context, tx *statetree.Tx, recs []eventlog.Record, emit func(i int, o outcome)) (n int, err error) {
	r.consumed, r.at = r.consumed[:0], r.at[:0]
	for i := range recs {
		if r.red.Consumes(recs[i].Type) {
			r.consumed = append(r.consumed, &recs[i])
			r.at = append(r.at, i)
		}
	}
	next := 0             // the first record not emitted yet
	mark := len(tx.Ops()) // ops before the current event
	finished := 0         // consumed records done
	failedAt := -1        // index in recs of the failed record
	var failure error
	done := func(k int, err error) bool {
		i := r.at[k]
		for ; next < i; next++ {
			emit(next, outcome{})
		}
		finished = k + 1
		var o outcome
		switch {
		case err == nil:
			ops := tx.Ops()
			o.ops = ops[mark:len(ops):len(ops)]
			if len(o.ops) == 0 {
				o.ops = nil
			}
		case errors.Is(err, ErrRejected):
			if rerr := tx.Rollback(mark); rerr != nil {
				failure, failedAt = rerr, i
				return false
			}
			o.rejected = err
		default:
			failure, failedAt = err, i
			return false
		}
		mark = len(tx.Ops())
		emit(i, o)
		next = i + 1
		return true
	}
	if r.batch != nil && len(r.consumed) > 1 {
		// An error after the last event was done (which the contract
		// rules out) leaves the events applied; a broken reducer fails
		// the next call anyway.
		if berr := r.batch.ReduceBatch(ctx, r.consumed, tx, done); berr != nil && failure == nil && finished < len(r.consumed) {
			failure, failedAt = berr, r.at[finished]
		}
	} else {
		for k, rec := range r.consumed {
			if !done(k, r.red.Reduce(ctx, rec, tx)) {
				break
			}
		}
	}
	if failure != nil {
		// The failed event's own changes go; the events before it stay.
		if rerr := tx.Rollback(mark); rerr != nil {
			return 0, rerr
		}
		for ; next < failedAt; next++ {
			emit(next, outcome{})
		}
		return failedAt, failure
	}
	for ; next < len(recs); next++ {
		emit(next, outcome{})
	}
	return len(recs), nil
}
