package view

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// Checkpoints are epoch-boundary states a view keeps in memory to start
// reads of past states from (StateAt). They share structure, but each costs
// what changed in its epoch, which for a busy view is much of the state: 256
// of them kept a 1M-event replay of 10k todos at ~500 MB live and made the
// collector's marking its largest cost. So at most maxCheckpoints are kept:
// the newest denseCheckpoints at every epoch, older ones thinned so that
// their spacing grows with age (and snapshots on disk serve the far past).
const (
	maxCheckpoints   = 32
	denseCheckpoints = 16
)

// Progress reports how far a replay got.
type Progress struct {
	Seq        uint64  `json:"seq"`
	Head       uint64  `json:"head"`
	EventsPerS float64 `json:"events_per_s"`
	ETAS       float64 `json:"eta_s"`
}

// ReplayConfig configures Replay.
type ReplayConfig struct {
	// Log is the log to read.
	Log Source
	// Reducer builds the state; Replay does not close it.
	Reducer Reducer
	// Root and Seq are the state to start from (the zero Value and 0 for an
	// empty view).
	Root statetree.Value
	Seq  uint64
	// To is the last seq to apply; 0 means the log's head (followed while it
	// moves, until the replay reaches it).
	To uint64
	// BatchSize is the number of records read at a time (default 1024).
	BatchSize int
	// Progress, if set, is called about every ProgressEvery (default 200 ms)
	// and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// ReplayResult is the outcome of Replay.
type ReplayResult struct {
	Root     statetree.Value
	Seq      uint64
	Events   uint64 // events read
	Rejected uint64 // events the reducer rejected (no effect)
	Elapsed  time.Duration

	ckpts []current
}

// ReplayError is a reducer failure (a trap, a time-out, an error) during a
// replay, at Seq.
type ReplayError struct {
	Seq uint64
	Err error
}

// Error names the seq and the reducer's error.
func (e *ReplayError) Error() string {
	return fmt.Sprintf("reducer failed at seq %d: %v", e.Seq, e.Err)
}

// Unwrap returns the reducer's error, for errors.Is and errors.As.
func (e *ReplayError) Unwrap() error { return e.Err }

// apply runs red on rec over root. It returns the new root and the ops; a
// rejected event leaves root as it was.
func apply(ctx context.Context, red Reducer, root statetree.Value, rec *eventlog.Record) (statetree.Value, []statetree.Op, bool, error) {
	if !red.Consumes(rec.Type) {
		return root, nil, false, nil
	}
	tx := root.Begin()
	if err := red.Reduce(ctx, rec, tx); err != nil {
		if errors.Is(err, ErrRejected) {
			return root, nil, true, nil
		}
		return root, nil, false, err
	}
	nr, ops := tx.Commit()
	return nr, ops, false, nil
}

// Replay applies the log to a state with a reducer, outside any view: the
// shadow replay of a new version, and reads of past states.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplayResult, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1024
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 200 * time.Millisecond
	}
	res := ReplayResult{Root: cfg.Root, Seq: cfg.Seq}
	if cfg.Seq == 0 {
		res.Root = statetree.EmptyMap()
	}
	start := time.Now()
	lastProg := start
	report := func(head uint64) {
		if cfg.Progress == nil {
			return
		}
		el := time.Since(start).Seconds()
		p := Progress{Seq: res.Seq, Head: head}
		if el > 0 {
			p.EventsPerS = float64(res.Events) / el
		}
		if p.EventsPerS > 0 && head > res.Seq {
			p.ETAS = float64(head-res.Seq) / p.EventsPerS
		}
		cfg.Progress(p)
	}
	var buf []eventlog.Record
	tx := new(statetree.Tx) // one for every batch: Reset sizes its op slices
	for {
		head := cfg.Log.LastSeq()
		if cfg.To != 0 {
			if cfg.To > head {
				return res, fmt.Errorf("view: replay to seq %d beyond the log's head %d", cfg.To, head)
			}
			head = cfg.To
		}
		if res.Seq >= head {
			res.Elapsed = time.Since(start)
			report(head)
			return res, nil
		}
		n := cfg.BatchSize
		if rem := head - res.Seq; rem < uint64(n) {
			n = int(rem)
		}
		var err error
		buf, err = cfg.Log.Read(ctx, res.Seq+1, n, buf)
		if err != nil {
			return res, fmt.Errorf("view: reading the log at seq %d: %w", res.Seq+1, err)
		}
		if len(buf) == 0 {
			return res, fmt.Errorf("view: the log returned nothing at seq %d (head %d)", res.Seq+1, head)
		}
		if buf[0].Seq > head {
			res.Seq = head // a sparse source: nothing changed up to head
			continue
		}
		recs := buf
		for i := range recs {
			if recs[i].Seq > head {
				recs = recs[:i]
				break
			}
		}
		tx.Reset(res.Root)
		for len(recs) > 0 {
			run := recs[:runEnd(recs, len(recs))]
			recs = recs[len(run):]
			n, err := applyRun(ctx, cfg.Reducer, tx, run, func(_ int, o outcome) {
				if o.rejected != nil {
					res.Rejected++
				}
			})
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				if n > 0 { // the state before the failed event
					res.Root, _ = tx.Commit()
					res.Seq = run[n-1].Seq
					res.Events += uint64(n)
				}
				if errors.Is(err, ErrReread) {
					break // read again from res.Seq
				}
				return res, &ReplayError{Seq: run[n].Seq, Err: err}
			}
			res.Root, _ = tx.Commit()
			res.Seq = run[len(run)-1].Seq
			res.Events += uint64(len(run))
			if res.Seq%abi.EpochSize == 0 {
				res.ckpts = appendCkpt(res.ckpts, current{res.Root, res.Seq, cfg.Reducer.Hash()})
			}
		}
		if cfg.Progress != nil && time.Since(lastProg) >= cfg.ProgressEvery {
			lastProg = time.Now()
			report(head)
		}
	}
}

// appendCkpt adds c (the newest) to cs, thinning the older checkpoints when
// full: never the oldest nor the dense newest ones, and otherwise the one
// whose neighbours are closest together for its age, which spaces the old
// ones geometrically.
func appendCkpt(cs []current, c current) []current {
	if len(cs) >= maxCheckpoints {
		drop, best := 1, math.Inf(1)
		for i := 1; i < len(cs)-denseCheckpoints; i++ {
			gap := float64(cs[i+1].seq - cs[i-1].seq)
			if score := gap / float64(c.seq-cs[i].seq); score < best {
				drop, best = i, score
			}
		}
		cs = append(cs[:drop], cs[drop+1:]...)
	}
	return append(cs, c)
}

func (v *View) addCheckpoint(c current) {
	v.ckptMu.Lock()
	v.ckpts = appendCkpt(v.ckpts, c)
	v.ckptMu.Unlock()
}

// SwapRequest asks a running view to continue with another reducer.
type SwapRequest struct {
	// Reducer is the new reducer; the view owns it from the call on (it
	// closes it if the swap does not happen).
	Reducer Reducer
	// Factory makes fresh instances of the new reducer (for StateAt).
	Factory Factory
	// Replay is the new reducer's replay of the log (Replay with Reducer).
	Replay ReplayResult
	// IfIdentical refuses the swap unless the new state equals the live one.
	IfIdentical bool
}

// SwapReport says what a swap did.
type SwapReport struct {
	Swapped   bool   `json:"swapped"`
	Seq       uint64 `json:"seq"`       // the seq both states were compared at
	Tail      uint64 `json:"tail"`      // events the view applied to the replay's state to catch up
	OldHash   string `json:"old_root"`  // the live state's root hash
	NewHash   string `json:"new_root"`  // the new reducer's root hash
	Identical bool   `json:"identical"` // the two states are equal
	// Changes are the differing paths (at most 20).
	Changes []PathChange `json:"changes,omitempty"`
	// Ops is the number of ops of the swap patch.
	Ops int `json:"ops"`
	// OldPlugin and NewPlugin are the reducers' hashes.
	OldPlugin string `json:"old_plugin"`
	NewPlugin string `json:"new_plugin"`
}

// PathChange is one difference between two states, for reports.
type PathChange struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	Old  json1  `json:"old"`
	New  json1  `json:"new"`
}

// json1 is a state value rendered as JSON.
type json1 struct{ v statetree.Value }

// MarshalJSON implements json.Marshaler.
func (j json1) MarshalJSON() ([]byte, error) { return j.v.AppendJSON(nil), nil }

// Changes returns up to limit differences between two states.
func Changes(old, new statetree.Value, limit int) []PathChange {
	var out []PathChange
	for _, c := range statetree.DiffPaths(old, new, limit) {
		out = append(out, PathChange{Op: c.Op, Path: c.Path, Old: json1{c.Old}, New: json1{c.New}})
	}
	return out
}

type swapOp struct {
	req  SwapRequest
	done chan swapResult
}

type swapResult struct {
	rep SwapReport
	err error
}

// ErrSwapRefused is returned by Swap when IfIdentical was asked and the
// states differ; the report says where.
var ErrSwapRefused = errors.New("view: the new version's state differs from the live one; swap refused")

// Swap replaces the view's reducer and state (hot swap). It runs in the
// view's goroutine: the new reducer first applies the events the view has
// applied beyond req.Replay, then the two states are compared (with
// IfIdentical a difference refuses the swap), then the view continues with
// the new reducer and state. Reads never block; subscribers receive the
// change as one patch: the minimal diff from the state they hold to the new
// one, carried by the next event (patch seqs increase strictly). One swap
// runs at a time. If ctx ends before the view has taken up the request, the
// request is withdrawn and Swap returns ctx's error; once the view has begun
// it, Swap waits for it and returns its outcome, so that an error always
// means the view did not swap.
func (v *View) Swap(ctx context.Context, req SwapRequest) (SwapReport, error) {
	if !v.swapMu.TryLock() {
		req.Reducer.Close()
		return SwapReport{}, errors.New("view: a swap of this view is already in progress")
	}
	defer v.swapMu.Unlock()
	if !v.running.Load() {
		req.Reducer.Close()
		return SwapReport{}, errors.New("view: Swap needs a running view")
	}
	op := &swapOp{req: req, done: make(chan swapResult, 1)}
	select {
	case v.swapc <- op:
	case <-v.done:
		req.Reducer.Close()
		return SwapReport{}, errors.New("view: the view stopped")
	}
	if c := v.waitCancel.Load(); c != nil {
		(*c)()
	}
	select {
	case r := <-op.done:
		return r.rep, r.err
	case <-ctx.Done():
	case <-v.done:
	}
	// The caller gave up, or the view stopped. A request the view has not
	// taken yet is withdrawn (swapMu: the only one in swapc is ours); one it
	// took is answered (doSwap and drainSwaps always answer), and that
	// answer is the truth: the swap may have happened.
	select {
	case <-v.swapc:
		req.Reducer.Close()
		if err := ctx.Err(); err != nil {
			return SwapReport{}, err
		}
		return SwapReport{}, errors.New("view: the view stopped")
	default:
	}
	r := <-op.done
	return r.rep, r.err
}

func (v *View) drainSwaps() {
	for {
		select {
		case op := <-v.swapc:
			op.req.Reducer.Close()
			op.done <- swapResult{err: errors.New("view: the view stopped")}
		default:
			return
		}
	}
}

// doSwap performs op in Run's goroutine; it reports whether it swapped.
func (v *View) doSwap(ctx context.Context, op *swapOp) bool {
	req := op.req
	fail := func(rep SwapReport, err error) bool {
		req.Reducer.Close()
		op.done <- swapResult{rep, err}
		return false
	}
	root, seq := req.Replay.Root, req.Replay.Seq
	ckpts := req.Replay.ckpts
	newHash := req.Reducer.Hash()
	rep := SwapReport{OldPlugin: *v.hash.Load(), NewPlugin: newHash}
	// Catch up with the live view: the tail the replay has not seen.
	if seq < v.seq {
		tail, err := Replay(ctx, ReplayConfig{Log: v.cfg.Log, Reducer: req.Reducer, Root: root, Seq: seq, To: v.seq, BatchSize: v.cfg.BatchSize})
		if err != nil {
			return fail(rep, err)
		}
		root, seq, rep.Tail = tail.Root, tail.Seq, tail.Events
		for _, c := range tail.ckpts {
			ckpts = appendCkpt(ckpts, c)
		}
	}
	// If the replay is ahead of the view (a halted view, or one behind),
	// the swap jumps ahead and the comparison is with the view's newest state.
	old := v.root
	rep.Seq = seq
	rep.OldHash, rep.NewHash = old.Hash().String(), root.Hash().String()
	rep.Identical = rep.OldHash == rep.NewHash
	if !rep.Identical {
		rep.Changes = Changes(old, root, 20)
	}
	if req.IfIdentical && !rep.Identical {
		return fail(rep, ErrSwapRefused)
	}
	if v.pendingBase == nil {
		b := v.root
		v.pendingBase = &b
	}
	rep.Ops = len(statetree.Diff(*v.pendingBase, root))
	v.cfg.Reducer.Close()
	v.cfg.Reducer = req.Reducer
	v.hash.Store(&newHash)
	if req.Factory != nil {
		f := req.Factory
		v.factory.Store(&f)
	} else {
		v.factory.Store(nil)
	}
	v.root, v.seq = root, seq
	var b current
	if len(ckpts) > 0 {
		b = ckpts[len(ckpts)-1]
	} else {
		b = current{statetree.EmptyMap(), 0, newHash}
		ckpts = []current{b}
	}
	v.boundary.Store(&b)
	v.ckptMu.Lock()
	v.ckpts = ckpts
	v.ckptMu.Unlock()
	v.snapSeq.Store(0)
	v.sinceSnap = v.cfg.SnapshotEvery // snapshot the new version soon
	v.setStatus(func(s *Status) {
		s.Phase, s.Error, s.HaltedAt = PhaseLive, "", 0
		s.Plugin = newHash
	})
	v.publish()
	rep.Swapped = true
	v.logger.Info("reducer swapped", "seq", seq, "tail", rep.Tail, "identical", rep.Identical, "ops", rep.Ops, "plugin", newHash)
	op.done <- swapResult{rep, nil}
	return true
}

// Factory returns the factory of the view's current reducer (nil if none).
func (v *View) Factory() Factory {
	if fp := v.factory.Load(); fp != nil {
		return *fp
	}
	return nil
}

// Hash returns the hash of the view's current reducer.
func (v *View) Hash() string { return *v.hash.Load() }

// StateAt returns the state as of seq, as the view's current reducer makes
// it: from the nearest epoch-boundary state at or before seq (kept in
// memory, or a snapshot), replaying the rest with a fresh reducer instance.
// It equals replaying the log's first seq events from scratch.
func (v *View) StateAt(ctx context.Context, seq uint64) (statetree.Value, error) {
	root, cur := v.State()
	if seq > cur {
		return statetree.Value{}, fmt.Errorf("view %s has applied events up to seq %d; seq %d is not reached yet", v.cfg.Name, cur, seq)
	}
	hash := v.Hash()
	fp := v.factory.Load()
	if seq == cur {
		return root, nil
	}
	if v.cfg.StateAt != nil {
		return v.cfg.StateAt(ctx, seq)
	}
	if fp == nil {
		return statetree.Value{}, errors.New("view: reads of past states are not available for this view")
	}
	base := current{statetree.EmptyMap(), 0, hash}
	v.ckptMu.Lock()
	for _, c := range v.ckpts {
		if c.seq <= seq && c.seq >= base.seq && c.hash == hash {
			base = c
		}
	}
	v.ckptMu.Unlock()
	if v.cfg.SnapshotDir != "" && seq-base.seq > abi.EpochSize {
		if s, err := loadSnapshotAtOrBefore(v.cfg.SnapshotDir, v.cfg.Name, hash, seq, v.logger); err == nil && s != nil && s.seq > base.seq {
			base = current{s.root, s.seq, hash}
		}
	}
	if base.seq == seq {
		return base.root, nil
	}
	red, err := (*fp)(ctx, base.seq+1)
	if err != nil {
		return statetree.Value{}, err
	}
	defer red.Close()
	res, err := Replay(ctx, ReplayConfig{Log: v.cfg.Log, Reducer: red, Root: base.root, Seq: base.seq, To: seq})
	if err != nil {
		return statetree.Value{}, err
	}
	return res.Root, nil
}

// CompareConfig configures Compare.
type CompareConfig struct {
	Log      Source
	Old, New Reducer // not closed by Compare
	// To is the last seq (0: the head when Compare starts).
	To uint64
	// Limit bounds the paths reported (default 20).
	Limit    int
	Progress func(Progress)
}

// CompareReport is the compatibility report of a new reducer version.
type CompareReport struct {
	Identical bool   `json:"identical"`
	Seq       uint64 `json:"seq"`  // the last seq compared
	Head      uint64 `json:"head"` // the seq replayed to
	// FirstDiff is the first seq after which the states differ (0: none).
	FirstDiff uint64 `json:"first_diff,omitempty"`
	// FirstDiffType is that event's type.
	FirstDiffType string `json:"first_diff_type,omitempty"`
	// Changes are the differing paths after FirstDiff.
	Changes []PathChange `json:"changes,omitempty"`
	// OldRoot and NewRoot are the root hashes where the comparison ended.
	OldRoot string  `json:"old_root"`
	NewRoot string  `json:"new_root"`
	Events  uint64  `json:"events"`
	Elapsed float64 `json:"elapsed_s"`
	// Error is set when a reducer failed (the report is partial).
	Error string `json:"error,omitempty"`
}

// Compare replays the log with two reducers side by side and reports the
// first event after which their states differ (comparing root hashes after
// each event) and the differing paths there. It stops at the first
// difference. It changes nothing: it is the dry run of a new version.
func Compare(ctx context.Context, cfg CompareConfig) (CompareReport, error) {
	if cfg.Limit <= 0 {
		cfg.Limit = 20
	}
	to := cfg.To
	if to == 0 {
		to = cfg.Log.LastSeq()
	}
	rep := CompareReport{Head: to}
	start := time.Now()
	lastProg := start
	a, b := statetree.EmptyMap(), statetree.EmptyMap()
	var buf []eventlog.Record
	seq := uint64(0)
	defer func() { rep.Elapsed = time.Since(start).Seconds() }()
	for seq < to {
		var err error
		buf, err = cfg.Log.Read(ctx, seq+1, min(1024, int(to-seq)), buf)
		if err != nil {
			return rep, err
		}
		if len(buf) == 0 {
			return rep, fmt.Errorf("view: the log returned nothing at seq %d (comparing to %d)", seq+1, to)
		}
		if buf[0].Seq > to {
			seq = to // a sparse source: nothing changed up to to
			break
		}
		for i := range buf {
			rec := &buf[i]
			if rec.Seq > to {
				break
			}
			na, _, _, err := apply(ctx, cfg.Old, a, rec)
			if err != nil {
				rep.Error = fmt.Sprintf("the old version failed at seq %d: %v", rec.Seq, err)
				return rep, &ReplayError{rec.Seq, err}
			}
			nb, _, _, err := apply(ctx, cfg.New, b, rec)
			if err != nil {
				rep.Error = fmt.Sprintf("the new version failed at seq %d: %v", rec.Seq, err)
				return rep, &ReplayError{rec.Seq, err}
			}
			a, b, seq = na, nb, rec.Seq
			rep.Events++
			if a.Hash() != b.Hash() {
				rep.Seq, rep.FirstDiff, rep.FirstDiffType = seq, seq, rec.Type
				rep.OldRoot, rep.NewRoot = a.Hash().String(), b.Hash().String()
				rep.Changes = Changes(a, b, cfg.Limit)
				return rep, nil
			}
		}
		if cfg.Progress != nil && time.Since(lastProg) > 200*time.Millisecond {
			lastProg = time.Now()
			el := time.Since(start).Seconds()
			p := Progress{Seq: seq, Head: to, EventsPerS: float64(rep.Events) / el}
			if p.EventsPerS > 0 {
				p.ETAS = float64(to-seq) / p.EventsPerS
			}
			cfg.Progress(p)
		}
	}
	rep.Seq, rep.Identical = seq, true
	rep.OldRoot, rep.NewRoot = a.Hash().String(), b.Hash().String()
	return rep, nil
}
