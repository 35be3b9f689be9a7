package view

import (
	"context"
	"errors"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// Views apply runs of records to a state in one statetree transaction per
// run (applyRun), which is what makes replay fast: nodes the run made are
// edited in place by its later events instead of being copied again for
// each. Nobody can observe the states between the events of a run (the
// view publishes the state at the end of the run), so only the ops of each
// event are kept; a rejected event's changes are rolled back within the
// transaction (Tx.Rollback) and the events after it go on from the state
// before it, exactly as if each event had had a transaction of its own.

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

// applyRun applies recs, in order, through red to tx; the caller commits
// tx afterwards.
// emit is called for every record applied, in order, with its outcome
// (records of types the reducer does not consume are applied with no ops).
// applyRun stops at the first record whose reduction fails for another reason
// than a rejection: n is the number of records applied before it and err
// its error, and tx holds the state after recs[:n] (the failed event's
// changes are rolled back). Without a failure, n is len(recs) and err nil.
//
// The ops emit receives stay valid after the run (the transaction never
// writes over them again).
func applyRun(ctx context.Context, red Reducer, tx *statetree.Tx, recs []eventlog.Record, emit func(i int, o outcome)) (n int, err error) {
	for i := range recs {
		rec := &recs[i]
		if !red.Consumes(rec.Type) {
			emit(i, outcome{})
			continue
		}
		mark := len(tx.Ops())
		var o outcome
		switch err := red.Reduce(ctx, rec, tx); {
		case err == nil:
			if ops := tx.Ops(); len(ops) > mark {
				o.ops = ops[mark:len(ops):len(ops)]
			}
		case errors.Is(err, ErrRejected):
			if rerr := tx.Rollback(mark); rerr != nil {
				return i, rerr
			}
			o.rejected = err
		default:
			// The failed event's own changes go; the events before it stay.
			if rerr := tx.Rollback(mark); rerr != nil {
				return i, rerr
			}
			return i, err
		}
		emit(i, o)
	}
	return len(recs), nil
}
