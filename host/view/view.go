// Package view is nodb's view engine: it builds one view's state tree from
// the event log with a reducer, keeps it current as events arrive, publishes
// each event's changes as RFC 6902 ops, and snapshots it so a restart replays
// only the tail.
//
// A view runs one goroutine (Run). It reads the log in batches from its
// position; for each event it either calls the reducer (for event types the
// reducer consumes) inside a statetree transaction, or records an empty update
// without calling it. If the reducer fails (a trap, a timeout, an error it
// returns), the view halts at that event: it keeps serving the state of the
// last good event, reports the error in Status, and other views go on.
//
// Determinism and epochs. A WebAssembly reducer's runtime (Go's map seeds and
// iteration order, for one) lives in the guest's memory and advances from call
// to call, so the host re-creates the guest at every epoch boundary (every
// abi.EpochSize sequence numbers; see abi/ABI.md). The state right after an
// epoch's last seq is therefore reproducible from that state alone, and those
// are the only states snapshotted: a restart from a snapshot then replays
// exactly what a full replay would.
package view

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// Reducer turns events into state changes. Reduce must be deterministic: the
// same state and record must give the same changes on any host, every time.
// It is called from one goroutine at a time.
type Reducer interface {
	// Consumes reports whether the reducer wants events of type t. For other
	// types the view records an empty update without calling Reduce.
	Consumes(eventType string) bool
	// Reduce applies rec to the state in tx. An error halts the view at rec;
	// the changes made in tx are discarded.
	Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error
	// Hash identifies the reducer's code (for a Wasm plugin, the hex SHA-256
	// of its bytes). Snapshots made by one reducer are used only by it.
	Hash() string
	// Close releases the reducer.
	Close() error
}

// ErrRejected marks a Reduce error as the reducer's decision that an event
// has no effect (for example "todo/add" of an id that exists): events are
// intentions, and a reducer may refuse one. The view records an empty update,
// counts the rejection and goes on. Any other error halts the view.
var ErrRejected = errors.New("view: the reducer rejected the event")

// ErrReread marks a Reduce error as the record no longer carrying what it
// stood for: the source moved on past it after the view read it (a
// cascade's Feed forgets the frames of a consumer that lags, and a record
// read before that points to a frame that is gone). The event's changes are
// rolled back, the view keeps the state before it and reads again from
// there, and the source answers with what it has now (for a Feed, one
// catch-up patch). The view does not halt.
var ErrReread = errors.New("view: the source moved on; reading again")

// Update is the change one event made to a view: the ops the reducer
// recorded (none for events that left the state alone) and the seq of the
// event.
//
// The view applies events in runs, one transaction per run, and the states
// between the events of a run never exist as values: Root, the state after
// the event, is set (HasRoot) on the last update of each run only. The
// updates of a run are broadcast together, so a subscriber that needs the
// state at every seq applies the ops to the last root it has
// (statetree.Apply) until the next update with a root.
type Update struct {
	Seq     uint64
	Ops     []statetree.Op
	Root    statetree.Value
	HasRoot bool
}

// Phase is where a view is in its life.
type Phase string

// Phases of a view.
const (
	PhaseStarting   Phase = "starting"    // loading its snapshot
	PhaseCatchingUp Phase = "catching-up" // replaying history towards the head
	PhaseLive       Phase = "live"        // at the head, following new events
	PhaseHalted     Phase = "halted"      // the reducer failed; serving the last good state
	PhaseStopped    Phase = "stopped"     // Run returned
)

// Status is a view's state as the API reports it.
type Status struct {
	Name string `json:"name"`
	// Kind is "reducer" or "cascade"; Inputs are a cascade's input views.
	Kind     string   `json:"kind"`
	Inputs   []string `json:"inputs,omitempty"`
	Plugin   string   `json:"plugin"`
	Seq      uint64   `json:"seq"`
	Head     uint64   `json:"head"`
	Phase    Phase    `json:"status"`
	Error    string   `json:"error,omitempty"`
	HaltedAt uint64   `json:"halted_at,omitempty"`
	RootHash string   `json:"root_hash"`
	// SnapshotSeq is the seq of the newest snapshot written or loaded.
	SnapshotSeq uint64 `json:"snapshot_seq"`
	// SnapshotError says why the last snapshot failed, if it did (a full
	// disk, say); it clears when one succeeds. The view goes on without:
	// a restart then replays from the newest snapshot there is.
	SnapshotError string `json:"snapshot_error,omitempty"`
	// Note says what the view is waiting for, if anything (a cascade's
	// unreachable upstream, say).
	Note string `json:"note,omitempty"`
	// Rejected counts events the reducer rejected (no effect); LastRejection
	// says why the newest one was.
	Rejected      uint64 `json:"rejected"`
	LastRejection string `json:"last_rejection,omitempty"`
}

// Config configures a View.
type Config struct {
	// Name is the view's name, used in the API and in snapshot file names.
	Name string
	// Reducer builds the state. The view owns it and closes it.
	Reducer Reducer
	// Log is what the view reads: the event log, or a cascade's feed.
	Log Source
	// SnapshotDir is where snapshots are kept; empty disables snapshots.
	SnapshotDir string
	// SnapshotEvery asks for a snapshot once this many events were applied
	// since the last one. Default 100000.
	SnapshotEvery uint64
	// SnapshotInterval asks for a snapshot after this much time, if the
	// view moved. Default 1 minute.
	SnapshotInterval time.Duration
	// KeepSnapshots is how many snapshots to keep. Default 2.
	KeepSnapshots int
	// BatchSize is the number of records read from the log at a time.
	// Default 1024.
	BatchSize int
	// Logger receives the view's logs.
	Logger hclog.Logger
	// Factory makes fresh instances of Reducer's code, for reads of past
	// states (StateAt). Nil disables them.
	Factory Factory
	// Inputs names a cascade's input views (for Status).
	Inputs []string
	// Note, when set, supplies Status.Note.
	Note func() string
	// StateAt, when set, computes past states instead of the replay from
	// checkpoints (cascades rebuild them from their inputs' past states).
	StateAt func(ctx context.Context, seq uint64) (statetree.Value, error)
}

// Source is what a view reads records from: the event log for reducer views,
// a cascade's feed of upstream changes for cascades (host/cascade). An
// eventlog.Log is a Source.
type Source interface {
	// Read returns up to max records with seq >= from, in seq order.
	Read(ctx context.Context, from uint64, max int, buf []eventlog.Record) ([]eventlog.Record, error)
	// LastSeq is the seq of the newest record that can be read.
	LastSeq() uint64
	// Wait blocks until LastSeq is above after (returning it) or ctx ends.
	Wait(ctx context.Context, after uint64) (uint64, error)
}

// Factory makes a fresh instance of a reducer whose first event will be
// startSeq.
type Factory func(ctx context.Context, startSeq uint64) (Reducer, error)

// View is one materialised view.
type View struct {
	cfg    Config
	logger hclog.Logger

	cur    atomic.Pointer[current]
	status atomic.Pointer[Status]

	// Owned by Run.
	root      statetree.Value
	seq       uint64
	sinceSnap uint64
	lastSnap  time.Time
	running   atomic.Bool

	boundary atomic.Pointer[current] // state after the newest completed epoch
	snapMu   sync.Mutex              // serialises snapshot writes
	snapSeq  atomic.Uint64           // seq of the newest snapshot written or loaded
	snapErr  atomic.Value            // string: why the last snapshot failed, "" if it did not

	subMu sync.Mutex
	subs  map[*Subscription]struct{}

	rejected      atomic.Uint64
	lastRejection atomic.Value // string

	// Hot swap (swap.go).
	hash        atomic.Pointer[string]  // the reducer's hash
	factory     atomic.Pointer[Factory] // makes instances of the reducer
	swapMu      sync.Mutex              // one swap at a time
	swapc       chan *swapOp            // to Run
	waitCancel  atomic.Pointer[context.CancelFunc]
	done        chan struct{}    // closed when Run returns
	pendingBase *statetree.Value // Run: the root subscribers hold, until the next event carries the swap diff

	ckptMu sync.Mutex
	ckpts  []current // recent epoch-boundary states of the current reducer, oldest first
}

type current struct {
	root statetree.Value
	seq  uint64
	hash string // the reducer that made root (boundary states only)
}

// New creates a view, loading the newest usable snapshot made by the same
// reducer. It does not read the log: Run does.
func New(cfg Config) (*View, error) {
	if cfg.Name == "" || cfg.Reducer == nil || cfg.Log == nil {
		return nil, errors.New("view: Config needs Name, Reducer and Log")
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 100000
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = time.Minute
	}
	if cfg.KeepSnapshots <= 0 {
		cfg.KeepSnapshots = 2
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	v := &View{cfg: cfg, logger: cfg.Logger, root: statetree.EmptyMap(), subs: map[*Subscription]struct{}{}, lastSnap: time.Now(),
		swapc: make(chan *swapOp, 1), done: make(chan struct{})}
	h := cfg.Reducer.Hash()
	v.hash.Store(&h)
	if cfg.Factory != nil {
		f := cfg.Factory
		v.factory.Store(&f)
	}
	v.setStatus(func(s *Status) { s.Phase = PhaseStarting })
	if cfg.SnapshotDir != "" {
		removeUnfinishedSnapshots(cfg.SnapshotDir, cfg.Name, v.logger)
		head := cfg.Log.LastSeq()
		if err := setAsideSnapshotsAhead(cfg.SnapshotDir, cfg.Name, head, v.logger); err != nil {
			return nil, err
		}
		snap, err := loadSnapshotAtOrBefore(cfg.SnapshotDir, cfg.Name, cfg.Reducer.Hash(), head, v.logger)
		if err != nil {
			return nil, err
		}
		if snap != nil {
			v.root, v.seq = snap.root, snap.seq
			v.snapSeq.Store(snap.seq)
			v.logger.Info("loaded snapshot", "seq", snap.seq, "root", snap.root.Hash().String()[:16])
		}
	}
	v.boundary.Store(&current{v.root, v.seq, h})
	v.ckpts = []current{{v.root, v.seq, h}}
	v.publish()
	return v, nil
}

// Name returns the view's name.
func (v *View) Name() string { return v.cfg.Name }

// State returns the current state and the seq of the last event applied. The
// value is immutable: it stays valid and unchanged however the view moves on.
func (v *View) State() (statetree.Value, uint64) {
	c := v.cur.Load()
	return c.root, c.seq
}

// Status returns the view's status.
func (v *View) Status() Status {
	s := *v.status.Load()
	c := v.cur.Load()
	s.Seq = c.seq
	s.Head = v.cfg.Log.LastSeq()
	s.RootHash = c.root.Hash().String()
	s.SnapshotSeq = v.snapSeq.Load()
	if e, ok := v.snapErr.Load().(string); ok {
		s.SnapshotError = e
	}
	s.Rejected = v.rejected.Load()
	if r, ok := v.lastRejection.Load().(string); ok {
		s.LastRejection = r
	}
	if v.cfg.Note != nil {
		s.Note = v.cfg.Note()
	}
	return s
}

func (v *View) setStatus(f func(*Status)) {
	var s Status
	if old := v.status.Load(); old != nil {
		s = *old
	}
	s.Name = v.cfg.Name
	s.Kind, s.Inputs = "reducer", v.cfg.Inputs
	if len(v.cfg.Inputs) > 0 {
		s.Kind = "cascade"
	}
	s.Plugin = *v.hash.Load()
	f(&s)
	v.status.Store(&s)
}

func (v *View) publish() { v.cur.Store(&current{root: v.root, seq: v.seq}) }

// WaitFor blocks until the view has applied seq (or halted, or ctx ends).
func (v *View) WaitFor(ctx context.Context, seq uint64) error {
	for {
		if _, s := v.State(); s >= seq {
			return nil
		}
		if st := v.status.Load(); st.Phase == PhaseHalted {
			return fmt.Errorf("view %s halted at seq %d: %s", v.cfg.Name, st.HaltedAt, st.Error)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// Run applies the log to the view until ctx ends. It returns nil when ctx
// ends; a halted view keeps waiting (serving its state) until then.
func (v *View) Run(ctx context.Context) error {
	if !v.running.CompareAndSwap(false, true) {
		return errors.New("view: Run called twice")
	}
	defer func() {
		v.setStatus(func(s *Status) {
			if s.Phase != PhaseHalted {
				s.Phase = PhaseStopped
			}
		})
		v.closeSubs()
		v.cfg.Reducer.Close()
		close(v.done)
		v.drainSwaps()
	}()
	var buf []eventlog.Record
	upd := make([]Update, 0, v.cfg.BatchSize)
	tx := new(statetree.Tx)                    // one for every batch: Reset sizes its op slices
	catchStart, catchFrom := time.Now(), v.seq // the current catch-up, for its log line
	for {
		select {
		case op := <-v.swapc:
			v.doSwap(ctx, op)
			continue
		default:
		}
		head := v.cfg.Log.LastSeq()
		if v.seq >= head {
			if st := v.status.Load(); st.Phase == PhaseStarting || st.Phase == PhaseCatchingUp {
				// Once per catch-up: what an operator watches after a
				// restart or a deploy (and what benchmarks wait for,
				// since polling the status hashes every new state).
				took := time.Since(catchStart)
				v.logger.Info("view caught up", "seq", v.seq, "events", v.seq-catchFrom, "took", took.Round(time.Millisecond),
					"events_per_s", int64(float64(v.seq-catchFrom)/max(took.Seconds(), 1e-9)))
			}
			v.setStatus(func(s *Status) { s.Phase = PhaseLive })
			v.maybeSnapshot()
			wctx, wcancel := context.WithCancel(ctx)
			v.waitCancel.Store(&wcancel)
			select {
			case op := <-v.swapc:
				wcancel()
				v.doSwap(ctx, op)
				continue
			default:
			}
			var err error
			head, err = v.cfg.Log.Wait(wctx, v.seq)
			wcancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if wctx.Err() != nil {
					continue // a swap request woke us
				}
				return fmt.Errorf("view %s: waiting for events: %w", v.cfg.Name, err)
			}
		} else if st := v.status.Load(); st.Phase != PhaseCatchingUp && head-v.seq > uint64(v.cfg.BatchSize) {
			if st.Phase != PhaseStarting {
				catchStart, catchFrom = time.Now(), v.seq
			}
			v.setStatus(func(s *Status) { s.Phase = PhaseCatchingUp })
		}
		var err error
		buf, err = v.cfg.Log.Read(ctx, v.seq+1, v.cfg.BatchSize, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("view %s: reading the log at seq %d: %w", v.cfg.Name, v.seq+1, err)
		}
		upd = upd[:0]
		var failed error
		var failedAt uint64
		tx.Reset(v.root)
		for rest := buf; len(rest) > 0 && failed == nil; {
			max := len(rest)
			if v.pendingBase != nil {
				max = 1 // the first event after a swap carries the swap's diff
			}
			run := rest[:runEnd(rest, max)]
			rest = rest[len(run):]
			n, err := applyRun(ctx, v.cfg.Reducer, tx, run, func(i int, o outcome) {
				if o.rejected != nil {
					v.rejected.Add(1)
					v.lastRejection.Store(fmt.Sprintf("seq %d (%s): %v", run[i].Seq, run[i].Type, o.rejected))
					v.logger.Debug("event rejected by the reducer", "seq", run[i].Seq, "type", run[i].Type, "reason", o.rejected)
				}
				upd = append(upd, Update{Seq: run[i].Seq, Ops: o.ops})
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failed, failedAt = err, run[n].Seq
				run = run[:n]
			}
			if len(run) == 0 {
				break
			}
			v.root, _ = tx.Commit()
			v.seq = run[len(run)-1].Seq
			v.sinceSnap += uint64(len(run))
			u := &upd[len(upd)-1]
			u.Root, u.HasRoot = v.root, true
			if v.pendingBase != nil {
				// The first event after a swap carries the swap: one patch
				// from the state subscribers hold to the new state.
				u.Ops = statetree.Diff(*v.pendingBase, v.root)
				v.pendingBase = nil
			}
			if v.seq%abi.EpochSize == 0 {
				b := current{v.root, v.seq, *v.hash.Load()}
				v.boundary.Store(&b)
				v.addCheckpoint(b)
			}
		}
		v.publish()
		v.broadcast(upd)
		if errors.Is(failed, ErrReread) {
			v.logger.Debug("source moved on past a record read; reading again", "seq", failedAt, "reason", failed)
			continue
		}
		if failed != nil {
			if !v.halt(ctx, failedAt, failed) {
				return nil
			}
			continue
		}
		v.maybeSnapshot()
	}
}

// halt serves the last good state until ctx ends (it returns false) or a
// swap replaces the reducer (it returns true: Run goes on).
func (v *View) halt(ctx context.Context, seq uint64, err error) bool {
	v.logger.Error("reducer failed; view halted, serving the state before this event", "seq", seq, "error", err)
	v.setStatus(func(s *Status) {
		s.Phase = PhaseHalted
		s.HaltedAt = seq
		s.Error = err.Error()
	})
	for {
		select {
		case <-ctx.Done():
			return false
		case op := <-v.swapc:
			if v.doSwap(ctx, op) {
				return true
			}
		}
	}
}

// SetState replaces the view's state with root as of seq (the SET_STATE
// operation): the view then continues from seq+1. seq must be 0 or the last
// seq of an epoch (a multiple of abi.EpochSize), the only points from which a
// replay is reproducible. It is refused once Run has started.
func (v *View) SetState(root statetree.Value, seq uint64) error {
	if v.running.Load() {
		return errors.New("view: SetState on a running view; stop it first")
	}
	if seq%abi.EpochSize != 0 {
		return fmt.Errorf("view: SetState at seq %d: the seq must end an epoch (a multiple of %d)", seq, abi.EpochSize)
	}
	if seq > v.cfg.Log.LastSeq() {
		return fmt.Errorf("view: SetState at seq %d beyond the log's head %d", seq, v.cfg.Log.LastSeq())
	}
	v.root, v.seq = root, seq
	b := current{root, seq, *v.hash.Load()}
	v.boundary.Store(&b)
	v.ckptMu.Lock()
	v.ckpts = []current{b}
	v.ckptMu.Unlock()
	v.publish()
	return nil
}

// Snapshot writes a snapshot of the view's newest epoch-aligned state (the
// SNAPSHOT operation) and returns its seq. When no state newer than the last
// snapshot exists it writes nothing and returns the last snapshot's seq.
func (v *View) Snapshot() (uint64, error) {
	if v.cfg.SnapshotDir == "" {
		return 0, errors.New("view: snapshots are disabled for this view")
	}
	v.snapMu.Lock()
	defer v.snapMu.Unlock()
	b := v.boundary.Load()
	if b.seq <= v.snapSeq.Load() {
		return v.snapSeq.Load(), nil
	}
	start := time.Now()
	if err := writeSnapshot(v.cfg.SnapshotDir, v.cfg.Name, b.hash, b.seq, b.root, v.cfg.KeepSnapshots); err != nil {
		v.logger.Error("snapshot failed; the view goes on, and a restart replays from the newest snapshot there is", "seq", b.seq, "error", err)
		v.snapErr.Store(fmt.Sprintf("snapshot at seq %d: %v", b.seq, err))
		return 0, err
	}
	v.snapErr.Store("")
	v.snapSeq.Store(b.seq)
	v.logger.Debug("snapshot written", "seq", b.seq, "took", time.Since(start))
	return b.seq, nil
}

// maybeSnapshot starts a snapshot in the background when one is due.
func (v *View) maybeSnapshot() {
	if v.cfg.SnapshotDir == "" {
		return
	}
	due := v.sinceSnap >= v.cfg.SnapshotEvery ||
		(v.sinceSnap > 0 && time.Since(v.lastSnap) >= v.cfg.SnapshotInterval)
	if !due || v.boundary.Load().seq <= v.snapSeq.Load() {
		return
	}
	v.sinceSnap = v.seq - v.boundary.Load().seq
	v.lastSnap = time.Now()
	go v.Snapshot()
}

// FlushSnapshots waits for a snapshot write in progress.
func (v *View) FlushSnapshots() {
	v.snapMu.Lock()
	v.snapMu.Unlock()
}
