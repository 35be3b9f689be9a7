package cascade

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/plugins"
)

// Reducer runs a cascade plugin as a view.Reducer over a Feed's records: for
// each record that carries changes it calls the plugin once per changed
// input, in the plugin's declaration order, within the record's one
// transaction, with input_get reading the inputs as of the record's seq.
type Reducer struct {
	feed   *Feed
	inst   *plugins.Instance
	hash   string
	names  []string
	idx    []int // plugin input i → feed input idx[i]
	ev     plugins.Event
	st     state
	opsBuf []byte
}

// NewReducer instantiates a cascade module over feed. The module's declared
// inputs must be exactly the feed's inputs.
func NewReducer(ctx context.Context, mod *plugins.Module, feed *Feed, viewName string, cfg plugins.InstanceConfig) (*Reducer, error) {
	info := mod.Info()
	if info.Kind != "cascade" {
		return nil, fmt.Errorf("cascade: the plugin declares no inputs; it is a %s, not a cascade", info.Kind)
	}
	r := &Reducer{feed: feed, hash: hex.EncodeToString(info.SHA256[:]), names: info.Inputs}
	for _, name := range info.Inputs {
		k := slices.IndexFunc(feed.inputs, func(in Input) bool { return in.Name() == name })
		if k < 0 {
			return nil, fmt.Errorf("cascade: the plugin reads input %q, which the cascade was not given", name)
		}
		r.idx = append(r.idx, k)
	}
	cfg.View = viewName
	inst, err := mod.NewInstance(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.inst = inst
	r.st.r = r
	return r, nil
}

// Consumes implements view.Reducer: records with changes only.
func (r *Reducer) Consumes(t string) bool { return t == abi.TypePatch }

// Hash implements view.Reducer.
func (r *Reducer) Hash() string { return r.hash }

// Close implements view.Reducer.
func (r *Reducer) Close() error { return r.inst.Close(context.Background()) }

// Reduce implements view.Reducer.
func (r *Reducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	fr, err := r.feed.frameOf(rec)
	if err != nil {
		return err
	}
	return r.reduceFrame(ctx, tx, fr)
}

// reduceFrame calls the plugin for each changed input of fr.
func (r *Reducer) reduceFrame(ctx context.Context, tx *statetree.Tx, fr *frame) error {
	r.st.Reset(tx)
	r.st.fr = fr
	defer func() { r.st.Reset(nil); r.st.fr = nil }()
	for i, name := range r.names {
		ops := fr.ops[r.idx[i]]
		if ops == nil {
			continue
		}
		r.opsBuf = statetree.AppendPatchJSON(r.opsBuf[:0], ops)
		// Cascades see no event time: their output must be a function of
		// their inputs' states (the clock reads 0).
		r.ev = plugins.Event{Seq: fr.seq, Producer: name, Type: abi.TypePatch, Payload: r.opsBuf}
		err := r.inst.Reduce(ctx, &r.ev, &r.st)
		var re *plugins.ReducerError
		if errors.As(err, &re) {
			return fmt.Errorf("%w: %v", view.ErrRejected, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// state is plugins.State (the cascade's own tree) plus plugins.InputState.
type state struct {
	view.TxState
	r   *Reducer
	fr  *frame
	buf []byte
}

// InputGet implements plugins.InputState.
func (s *state) InputGet(input, path string) ([]byte, bool, error) {
	k := slices.Index(s.r.names, input)
	if k < 0 || s.fr == nil {
		return nil, false, abi.StatusNotFound
	}
	p, err := statetree.ParsePath(path)
	if err != nil {
		return nil, false, abi.StatusInvalidPath
	}
	v, ok := s.fr.roots[s.r.idx[k]].Get(p)
	if !ok {
		return nil, false, nil
	}
	s.buf = statetree.AppendCBOR(s.buf[:0], v)
	return s.buf, true, nil
}

// Config configures a cascade view.
type Config struct {
	// Name is the cascade view's name.
	Name string
	// Module is the cascade plugin.
	Module *plugins.Module
	// Inputs are its inputs, one per input the module declares.
	Inputs []Input
	// Instance configures the plugin's instances (limits, logger).
	Instance plugins.InstanceConfig
	// Retain bounds the frames the feed keeps, and the changes it keeps of
	// an input while another lags (0: DefaultRetain).
	Retain int
	// Logger receives the view's logs.
	Logger hclog.Logger
}

// Cascade is a running cascade: its view and the feed behind it.
type Cascade struct {
	View *view.View
	Feed *Feed
	cfg  Config
}

// CheckInputs verifies that inputs match what mod declares and share one
// source.
func CheckInputs(mod *plugins.Module, inputs []Input) error {
	info := mod.Info()
	if info.Kind != "cascade" {
		return errors.New("the plugin declares no inputs (nodb.OnPatch), so it is a reducer, not a cascade")
	}
	if len(inputs) != len(info.Inputs) {
		return fmt.Errorf("the plugin declares inputs %v but was given %d", info.Inputs, len(inputs))
	}
	for _, in := range inputs {
		if in.Source() != inputs[0].Source() {
			return fmt.Errorf("inputs %q (%s) and %q (%s) come from different hosts; a cascade's inputs must share one sequence (all local, or all on one remote host)", inputs[0].Name(), inputs[0].Source(), in.Name(), in.Source())
		}
		if !slices.Contains(info.Inputs, in.Name()) {
			return fmt.Errorf("input %q is not one the plugin declares (%v)", in.Name(), info.Inputs)
		}
	}
	return nil
}

// New builds a cascade view (not yet running: call Run).
func New(ctx context.Context, cfg Config) (*Cascade, error) {
	if err := CheckInputs(cfg.Module, cfg.Inputs); err != nil {
		return nil, fmt.Errorf("cascade %s: %w", cfg.Name, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	feed := NewFeed(cfg.Inputs, cfg.Retain)
	c := &Cascade{Feed: feed, cfg: cfg}
	red, err := NewReducer(ctx, cfg.Module, feed, cfg.Name, cfg.Instance)
	if err != nil {
		return nil, err
	}
	v, err := view.New(view.Config{
		Name:    cfg.Name,
		Reducer: red,
		Log:     feed,
		Logger:  cfg.Logger,
		Factory: c.Factory(cfg.Module, cfg.Instance),
		Inputs:  cfg.Module.Info().Inputs,
		Note:    feed.Note,
		StateAt: c.stateAt,
	})
	if err != nil {
		red.Close()
		return nil, err
	}
	c.View = v
	return c, nil
}

// Factory returns a view.Factory making reducers of mod (with instance
// configuration ic) over this cascade's feed: for hot swaps of the
// cascade's plugin and its past states.
func (c *Cascade) Factory(mod *plugins.Module, ic plugins.InstanceConfig) view.Factory {
	return func(ctx context.Context, startSeq uint64) (view.Reducer, error) {
		if err := CheckInputs(mod, c.Feed.inputs); err != nil {
			return nil, fmt.Errorf("cascade %s: %w", c.cfg.Name, err)
		}
		ic := ic
		ic.StartSeq = startSeq
		return NewReducer(ctx, mod, c.Feed, c.cfg.Name, ic)
	}
}

// Run runs the feed and the view until ctx ends.
func (c *Cascade) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ferr := make(chan error, 1)
	go func() { ferr <- c.Feed.Run(ctx) }()
	err := c.View.Run(ctx)
	cancel()
	if e := <-ferr; err == nil {
		err = e
	}
	return err
}

// stateAt rebuilds the cascade's state as of seq from its inputs' states
// then (the cascade's state is a function of them): one fresh instance of
// the current plugin, one catch-up patch per input from empty.
func (c *Cascade) stateAt(ctx context.Context, seq uint64) (statetree.Value, error) {
	fp := c.View.Factory()
	if fp == nil {
		return statetree.Value{}, errors.New("cascade: no factory for past states")
	}
	fr := &frame{seq: seq, roots: make([]statetree.Value, len(c.Feed.inputs)), ops: make([][]statetree.Op, len(c.Feed.inputs))}
	for i, in := range c.Feed.inputs {
		root, err := in.StateAt(ctx, seq)
		if err != nil {
			return statetree.Value{}, fmt.Errorf("cascade %s: input %q at seq %d: %w", c.cfg.Name, in.Name(), seq, err)
		}
		fr.roots[i] = root
		if ops := statetree.Diff(statetree.EmptyMap(), root); len(ops) > 0 {
			fr.ops[i] = ops
		}
	}
	root := statetree.EmptyMap()
	if !fr.changed() {
		return root, nil
	}
	red, err := fp(ctx, seq)
	if err != nil {
		return statetree.Value{}, err
	}
	defer red.Close()
	cr, ok := red.(*Reducer)
	if !ok {
		return statetree.Value{}, errors.New("cascade: the view's reducer is not a cascade")
	}
	tx := root.Begin()
	if err := cr.reduceFrame(ctx, tx, fr); err != nil {
		if errors.Is(err, view.ErrRejected) {
			return root, nil
		}
		return statetree.Value{}, err
	}
	nr, _ := tx.Commit()
	return nr, nil
}
