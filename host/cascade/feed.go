// Package cascade runs cascaded views: views whose inputs are other views'
// changes instead of events. A cascade is a WebAssembly plugin (abi/ABI.md,
// section 13) that receives each input's patch at each seq, may read every
// input's state as of that seq, and builds its own state tree; the result is
// an ordinary view.View (state, patches, subscriptions, time travel, hot
// swap), fed by a Feed instead of the event log.
//
// Inputs are local views (LocalInput) or views on another nodb host,
// followed over the ordinary client protocol (RemoteInput). All inputs of one
// cascade share one sequence space: they are all local, or all on the same
// remote host. The Feed merges them by seq: a seq is delivered only when
// every input has reached it, and the patches of one seq are delivered in
// the order the plugin declared its inputs, so the cascade's output at a seq
// depends only on its inputs' states at that seq.
//
// A cascade's state must be a function of its inputs' states. The Feed
// delivers every change while it follows its inputs, but a consumer that
// starts from scratch (a restart, a rebuild, a hot swap of the cascade) or
// falls behind what the Feed retains receives one catch-up patch: the
// difference between the inputs' states at its position and now. That is
// what makes cascades rebuildable from their inputs without a log of their
// own (RATIONALE.md, "Cascades").
package cascade

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
)

// Record types of a Feed.
const (
	// typeProgress marks a seq at which no input changed (the view advances
	// without calling the plugin).
	typeProgress = "nodb/progress"
	// producer is the producer of every Feed record.
	producer = "nodb.cascade"
)

// DefaultRetain is how many frames (seqs at which some input changed) a
// Feed keeps for consumers that lag.
const DefaultRetain = 8192

// frame is the inputs' changes at one seq.
type frame struct {
	seq    uint64
	prev   uint64            // the seq of the previous frame (ops start there)
	roots  []statetree.Value // every input's state as of seq
	ops    [][]statetree.Op  // per input; nil if it did not change
	handle uint64
}

func (f *frame) changed() bool {
	for _, o := range f.ops {
		if o != nil {
			return true
		}
	}
	return false
}

type change struct {
	seq  uint64
	ops  []statetree.Op
	root statetree.Value
}

type inputState struct {
	ready   bool
	seq     uint64          // the newest seq this input reached
	root    statetree.Value // its state as of seq
	startAt uint64          // the seq of its first state
	first   statetree.Value // its first state
	dirty   bool            // a reset at seq is waiting for the next seq
	pending []change        // changes above the merged seq
}

// Feed merges the changes of a cascade's inputs by seq into records a
// view.View reads (it implements view.Source). Inputs push their changes
// with the push functions Run hands them.
type Feed struct {
	inputs []Input
	retain int

	mu      sync.Mutex
	notify  chan struct{} // closed and replaced when merged grows
	in      []*inputState
	merged  uint64 // every input has reached it; 0 until all are ready
	started bool
	base    frame // the inputs as of base.seq; frames start after it
	frames  []*frame
	handles map[uint64]*frame
	extra   []uint64 // handles of catch-up frames, oldest first
	retired []uint64 // handles of trimmed frames, deleted at the next trim
	trouble []string // per input: why it cannot follow now ("" if fine)
	nextH   uint64
	failed  error
}

// NewFeed returns a Feed over inputs (in the plugin's declaration order).
// retain bounds the frames kept for lagging consumers (0: DefaultRetain).
func NewFeed(inputs []Input, retain int) *Feed {
	if retain <= 0 {
		retain = DefaultRetain
	}
	f := &Feed{inputs: inputs, retain: retain, notify: make(chan struct{}), handles: map[uint64]*frame{}}
	for range inputs {
		f.in = append(f.in, &inputState{})
	}
	f.trouble = make([]string, len(inputs))
	return f
}

// Inputs returns the feed's inputs.
func (f *Feed) Inputs() []Input { return f.inputs }

// Run follows every input until ctx ends. It returns the first input's
// error that is not recoverable (an input view that does not exist, say).
func (f *Feed) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(f.inputs))
	for i, in := range f.inputs {
		go func() {
			ctx := withTrouble(ctx, func(why string) { f.setTrouble(i, why) })
			errc <- in.Follow(ctx, func(seq uint64, ops []statetree.Op, root statetree.Value, reset bool) {
				f.push(i, seq, ops, root, reset)
			})
		}()
	}
	var first error
	for range f.inputs {
		if err := <-errc; err != nil && first == nil && ctx.Err() == nil {
			first = err
			f.mu.Lock()
			f.failed = err
			f.wakeLocked()
			f.mu.Unlock()
			cancel()
		}
	}
	return first
}

// push records input i's state as of seq. reset says root replaces the
// input's state without the changes in between (ops are then ignored and
// computed).
func (f *Feed) push(i int, seq uint64, ops []statetree.Op, root statetree.Value, reset bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.in[i]
	switch {
	case !in.ready:
		in.ready, in.seq, in.root, in.first, in.startAt = true, seq, root, root, seq
	case seq < in.seq:
		return
	case seq == in.seq:
		// A new state at a seq already delivered (a reset after the
		// upstream swapped its reducer): it is delivered with the next seq.
		if reset && root.Hash() != in.root.Hash() {
			in.dirty = true
		}
		return
	default:
		if reset || in.dirty {
			ops = statetree.Diff(in.root, root)
			in.dirty = false
		}
		if len(ops) > 0 {
			in.pending = append(in.pending, change{seq, ops, root})
		}
		in.seq, in.root = seq, root
		if !f.started && len(in.pending) > f.retain {
			// Another input is not following yet (an upstream refusing
			// it, say), so nothing merges: instead of every change until
			// it comes, keep this input's newest state as its first. The
			// feed starts at the newest first state anyway.
			in.first, in.startAt, in.pending = root, seq, nil
		}
	}
	f.advanceLocked()
}

// advanceLocked turns pending changes at or below every input's position
// into frames.
func (f *Feed) advanceLocked() {
	to := uint64(0)
	for i, in := range f.in {
		if !in.ready {
			return
		}
		if i == 0 || in.seq < to {
			to = in.seq
		}
	}
	if !f.started {
		// The first position every input can be seen at: the newest first
		// state among them.
		start := uint64(0)
		for _, in := range f.in {
			start = max(start, in.startAt)
		}
		if to < start {
			return
		}
		f.base = frame{seq: start, roots: make([]statetree.Value, len(f.in))}
		for i, in := range f.in {
			f.base.roots[i] = rootAt(in, start)
			in.pending = dropThrough(in.pending, start)
		}
		f.started = true
		f.merged = start
	}
	if to <= f.merged {
		if to == f.merged && f.merged == f.base.seq {
			f.wakeLocked()
		}
		return
	}
	cur := f.base.roots
	if n := len(f.frames); n > 0 {
		cur = f.frames[n-1].roots
	}
	prev := f.lastFrameSeqLocked()
	for {
		// The smallest pending seq at or below to.
		next := uint64(0)
		for _, in := range f.in {
			if len(in.pending) > 0 && in.pending[0].seq <= to && (next == 0 || in.pending[0].seq < next) {
				next = in.pending[0].seq
			}
		}
		if next == 0 {
			break
		}
		fr := &frame{seq: next, prev: prev, roots: make([]statetree.Value, len(f.in)), ops: make([][]statetree.Op, len(f.in))}
		for i, in := range f.in {
			fr.roots[i] = cur[i]
			if len(in.pending) > 0 && in.pending[0].seq == next {
				fr.ops[i] = in.pending[0].ops
				fr.roots[i] = in.pending[0].root
				in.pending = in.pending[1:]
			}
		}
		f.addFrameLocked(fr)
		cur, prev = fr.roots, fr.seq
	}
	f.merged = to
	f.wakeLocked()
}

// rootAt is an input's state as of seq (before the feed started: its first
// state and every change since are at hand).
func rootAt(in *inputState, seq uint64) statetree.Value {
	r := in.first
	for _, c := range in.pending {
		if c.seq > seq {
			break
		}
		r = c.root
	}
	return r
}

func dropThrough(p []change, seq uint64) []change {
	k := 0
	for k < len(p) && p[k].seq <= seq {
		k++
	}
	return p[k:]
}

func (f *Feed) lastFrameSeqLocked() uint64 {
	if n := len(f.frames); n > 0 {
		return f.frames[n-1].seq
	}
	return f.base.seq
}

func (f *Feed) addFrameLocked(fr *frame) {
	f.nextH++
	fr.handle = f.nextH
	f.handles[fr.handle] = fr
	f.frames = append(f.frames, fr)
	if len(f.frames) > 2*f.retain {
		// Forget the oldest frames; the newest forgotten one becomes the
		// base. Their handles stay valid until the next trim, for consumers
		// that read them but have not reduced them yet.
		for _, h := range f.retired {
			delete(f.handles, h)
		}
		cut := len(f.frames) - f.retain
		f.retired = f.retired[:0]
		for _, old := range f.frames[:cut] {
			f.retired = append(f.retired, old.handle)
		}
		last := f.frames[cut-1]
		f.base = frame{seq: last.seq, roots: last.roots}
		f.frames = append([]*frame(nil), f.frames[cut:]...)
	}
}

func (f *Feed) wakeLocked() {
	close(f.notify)
	f.notify = make(chan struct{})
}

// setTrouble records why input i cannot follow now ("" when it can again).
func (f *Feed) setTrouble(i int, why string) {
	f.mu.Lock()
	f.trouble[i] = why
	f.mu.Unlock()
}

// Note says what the feed is waiting for: inputs that cannot be followed
// now, or inputs that have not reported a state yet ("" if none).
func (f *Feed) Note() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for i, in := range f.inputs {
		switch {
		case f.trouble[i] != "":
			parts = append(parts, fmt.Sprintf("input %s: %s", in.Name(), f.trouble[i]))
		case !f.in[i].ready:
			parts = append(parts, fmt.Sprintf("waiting for input %s", in.Name()))
		}
	}
	return strings.Join(parts, "; ")
}

// LastSeq implements view.Source: the seq every input has reached.
func (f *Feed) LastSeq() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.merged
}

// Wait implements view.Source.
func (f *Feed) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		f.mu.Lock()
		m, ch, failed := f.merged, f.notify, f.failed
		f.mu.Unlock()
		if m > after {
			return m, nil
		}
		if failed != nil {
			return 0, failed
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		}
	}
}

// Read implements view.Source. Records from the consumer's position onwards
// are the retained frames; a consumer behind what is retained (or starting
// from scratch) first gets one catch-up frame from its inputs' states at
// from-1 (empty at 0) to the oldest retained state. A record whose type is
// abi.TypePatch carries changes; the others only advance the seq.
func (f *Feed) Read(ctx context.Context, from uint64, max int, buf []eventlog.Record) ([]eventlog.Record, error) {
	buf = buf[:0]
	if max <= 0 || from == 0 {
		return buf, nil
	}
	f.mu.Lock()
	if f.failed != nil {
		f.mu.Unlock()
		return buf, f.failed
	}
	if !f.started || from > f.merged {
		f.mu.Unlock()
		return buf, nil
	}
	pos := from - 1
	if pos < f.base.seq {
		base := f.base
		f.mu.Unlock()
		fr, err := f.catchUp(ctx, pos, base)
		if err != nil {
			return buf, err
		}
		buf = append(buf, fr)
		if len(buf) >= max {
			return buf, nil
		}
		f.mu.Lock()
		pos = base.seq
		if pos < f.base.seq {
			// Trimmed again meanwhile: the frames after pos are gone. The
			// consumer reads on from the catch-up and gets another one.
			f.mu.Unlock()
			return buf, nil
		}
	}
	// Frames after pos.
	lo, hi := 0, len(f.frames)
	for lo < hi {
		m := (lo + hi) / 2
		if f.frames[m].seq <= pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	last := pos
	for k := lo; k < len(f.frames) && len(buf) < max; k++ {
		fr := f.frames[k]
		buf = append(buf, record(fr.seq, fr.handle, true))
		last = fr.seq
	}
	if len(buf) < max && last < f.merged {
		buf = append(buf, record(f.merged, 0, false))
	}
	f.mu.Unlock()
	return buf, nil
}

// catchUp builds the frame from the inputs' states at pos to base.
func (f *Feed) catchUp(ctx context.Context, pos uint64, base frame) (eventlog.Record, error) {
	fr := &frame{seq: base.seq, prev: pos, roots: base.roots, ops: make([][]statetree.Op, len(f.inputs))}
	for i, in := range f.inputs {
		old := statetree.EmptyMap()
		if pos > 0 {
			var err error
			if old, err = f.pastState(ctx, i, pos); err != nil {
				return eventlog.Record{}, fmt.Errorf("cascade: input %q at seq %d (to catch up from there): %w", in.Name(), pos, err)
			}
		}
		if ops := statetree.Diff(old, base.roots[i]); len(ops) > 0 {
			fr.ops[i] = ops
		}
	}
	f.mu.Lock()
	f.nextH++
	fr.handle = f.nextH
	f.handles[fr.handle] = fr
	f.extra = append(f.extra, fr.handle)
	if len(f.extra) > 64 {
		delete(f.handles, f.extra[0])
		f.extra = f.extra[1:]
	}
	f.mu.Unlock()
	return record(fr.seq, fr.handle, fr.changed()), nil
}

// pastState returns input i's state as of seq, for a catch-up. A failure
// (a remote upstream unreachable for a moment) is retried with backoff, and
// shown in the view's note, until ctx ends or the feed fails: an error
// here would stop the view for good.
func (f *Feed) pastState(ctx context.Context, i int, seq uint64) (statetree.Value, error) {
	delay := minRetry
	var why string // the trouble reported, cleared on success
	for {
		root, err := f.inputs[i].StateAt(ctx, seq)
		if err == nil {
			if why != "" {
				f.mu.Lock()
				if f.trouble[i] == why {
					f.trouble[i] = ""
				}
				f.mu.Unlock()
			}
			return root, nil
		}
		f.mu.Lock()
		failed := f.failed
		if failed == nil && ctx.Err() == nil {
			why = fmt.Sprintf("catching up from seq %d: %v (retrying)", seq, err)
			f.trouble[i] = why
		}
		f.mu.Unlock()
		if failed != nil || ctx.Err() != nil {
			return statetree.Value{}, err
		}
		if !waitRetry(ctx, &delay) {
			return statetree.Value{}, err
		}
	}
}

func record(seq, handle uint64, changed bool) eventlog.Record {
	r := eventlog.Record{Seq: seq, Producer: producer, Type: typeProgress}
	if changed {
		r.Type = abi.TypePatch
		r.Payload = binary.LittleEndian.AppendUint64(nil, handle)
	}
	return r
}

// errGone is returned for a record whose frame the Feed no longer holds.
// It wraps view.ErrReread: the view reads again from its position and gets
// a catch-up frame.
var errGone = fmt.Errorf("cascade: the changes of this record are no longer held; the consumer fell too far behind: %w", view.ErrReread)

// frameOf returns the frame a record of this Feed carries.
func (f *Feed) frameOf(rec *eventlog.Record) (*frame, error) {
	if len(rec.Payload) != 8 {
		return nil, fmt.Errorf("cascade: record %d is not a feed record", rec.Seq)
	}
	h := binary.LittleEndian.Uint64(rec.Payload)
	f.mu.Lock()
	fr := f.handles[h]
	f.mu.Unlock()
	if fr == nil {
		return nil, errGone
	}
	return fr, nil
}
