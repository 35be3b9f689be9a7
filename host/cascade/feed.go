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
// own (RATIONALE.md, "Cascades"). It also bounds the Feed's memory: while
// one input lags the others by more than the Feed retains (its upstream
// stopped, say), the Feed merges the others' changes instead of keeping
// every one, and the cascade gets catch-up patches at the seqs where every
// input's state is known.
package cascade

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
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
// Feed keeps for consumers that lag, and how many changes of one input it
// keeps while another input lags.
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

// change is an input's state as of seq, with the ops that led there from
// its previous change. A merged change stands for several changes, or for
// a jump (a reset over seqs the input was not seen at): its ops are nil,
// and the input's states after its previous change and before seq are
// unknown.
type change struct {
	seq    uint64
	ops    []statetree.Op
	root   statetree.Value
	merged bool
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

// add appends c to the input's pending changes (after the feed started).
// Over retain (another input lags, so no frame takes them), every change
// after the oldest merges into one at the newest seq: the input's states
// in between are then unknown, and frames are built only where every
// input's state is known. The oldest stays where it is, so an input that
// lags but follows reaches it and the cascade moves on; the merged change
// is then the oldest, and stays in its turn. An input holds at most retain
// changes (two if retain is smaller), and only two states far apart: an
// evenly spaced sample over the lag pinned an old version of every key
// changed between its states, and its memory grew with the changes
// (RATIONALE.md, "Cascades").
func (in *inputState) add(c change, retain int) {
	in.pending = append(in.pending, c)
	if n := len(in.pending); n > retain && n > 2 {
		in.pending[1] = change{seq: c.seq, root: c.root, merged: true}
		clear(in.pending[2:])
		in.pending = in.pending[:2]
	}
}

// unknownUntil returns the seq of the merged change that hides the input's
// state as of seq (0 if that state is known).
func (in *inputState) unknownUntil(seq uint64) uint64 {
	k := sort.Search(len(in.pending), func(k int) bool { return in.pending[k].seq >= seq })
	if k < len(in.pending) && in.pending[k].merged && in.pending[k].seq > seq {
		return in.pending[k].seq
	}
	return 0
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
	merged  uint64 // every input has reached it and its state there is known; 0 until all are ready
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
// retain bounds the frames kept for lagging consumers, and the changes kept
// of an input while another lags (0: DefaultRetain).
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
		// A reset past the next seq leaves the input's states in between
		// unknown (it resubscribed, or its upstream forgot the changes
		// missed): it is a merged change, so that no frame pairs another
		// input's state there with this input's stale one.
		jump := reset && seq > in.seq+1
		switch {
		case jump:
			ops = nil
		case reset || in.dirty:
			ops = statetree.Diff(in.root, root)
		}
		in.dirty = false
		in.seq, in.root = seq, root
		switch {
		case len(ops) == 0 && !jump:
		case !f.started && (jump || len(in.pending) >= f.retain):
			// Another input is not following yet (an upstream refusing
			// it, say), so nothing merges: instead of every change until
			// it comes, keep this input's newest state as its first. The
			// feed starts at the newest first state anyway (and not
			// before a jump).
			in.first, in.startAt, in.pending = root, seq, nil
		case !f.started:
			in.pending = append(in.pending, change{seq: seq, ops: ops, root: root})
		default:
			in.add(change{seq: seq, ops: ops, root: root, merged: jump}, f.retain)
		}
	}
	f.advanceLocked()
}

// advanceLocked turns pending changes at or below every input's position
// into frames, at the seqs where every input's state is known (all of them
// unless an input holds merged changes).
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
	last := uint64(0) // the seq of the last frame built (or found empty)
	for {
		next := f.nextFrameLocked(to)
		if next == 0 {
			break
		}
		fr := &frame{seq: next, prev: prev, roots: make([]statetree.Value, len(f.in)), ops: make([][]statetree.Op, len(f.in))}
		for i, in := range f.in {
			fr.roots[i] = cur[i]
			k := 0
			for k < len(in.pending) && in.pending[k].seq <= next {
				k++
			}
			switch {
			case k == 1 && !in.pending[0].merged:
				fr.ops[i], fr.roots[i] = in.pending[0].ops, in.pending[0].root
			case k > 0:
				// A catch-up: the changes of seqs no frame could be built
				// at, or merged ones, as the difference from the previous
				// frame's state (the cascade's state is a function of its
				// inputs' states, ABI.md §13.4).
				fr.roots[i] = in.pending[k-1].root
				if ops := statetree.Diff(cur[i], fr.roots[i]); len(ops) > 0 {
					fr.ops[i] = ops
				}
			}
			clear(in.pending[:k])
			in.pending = in.pending[k:]
		}
		if fr.changed() {
			f.addFrameLocked(fr)
			cur, prev = fr.roots, fr.seq
		}
		last = next
	}
	// Every input has reached to, but the cascade is there only if every
	// input's state there is known; else at the last frame.
	m := to
	for _, in := range f.in {
		if in.unknownUntil(to) != 0 {
			m = last
			break
		}
	}
	if m > f.merged {
		f.merged = m
		f.wakeLocked()
	}
}

// nextFrameLocked returns the smallest seq at or below to at which some
// input changed and every input's state is known (0 if none): a frame
// there pairs states that coexisted.
func (f *Feed) nextFrameLocked(to uint64) uint64 {
	next := uint64(0)
	for _, in := range f.in {
		if len(in.pending) > 0 && (next == 0 || in.pending[0].seq < next) {
			next = in.pending[0].seq
		}
	}
	for next != 0 && next <= to {
		moved := false
		for _, in := range f.in {
			if u := in.unknownUntil(next); u != 0 {
				next, moved = u, true
			}
		}
		if !moved {
			return next
		}
	}
	return 0
}

// lagLocked describes the inputs that lag behind merged changes of others
// ("" if no input holds a merged change).
func (f *Feed) lagLocked() string {
	u := uint64(0) // the newest merged change
	for _, in := range f.in {
		for k := len(in.pending) - 1; k >= 0; k-- {
			if in.pending[k].merged {
				u = max(u, in.pending[k].seq)
				break
			}
		}
	}
	if u == 0 {
		return ""
	}
	var behind, ahead []string
	for i, in := range f.inputs {
		at := fmt.Sprintf("%s (at seq %d)", in.Name(), f.in[i].seq)
		if f.in[i].seq < u {
			behind = append(behind, at)
		} else {
			ahead = append(ahead, at)
		}
	}
	return fmt.Sprintf("input %s lags behind input %s: the changes in between reach the cascade as catch-up patches",
		strings.Join(behind, ", input "), strings.Join(ahead, ", input "))
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
// now, inputs that have not reported a state yet, or inputs that lag so far
// behind the others that the others' changes meanwhile reach the cascade
// as catch-up patches ("" if none).
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
	if lag := f.lagLocked(); lag != "" {
		parts = append(parts, lag)
	}
	return strings.Join(parts, "; ")
}

// LastSeq implements view.Source: the seq every input has reached (and
// where every input's state is known).
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
