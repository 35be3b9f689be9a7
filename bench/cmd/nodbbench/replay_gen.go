package main

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nodb-dev/nodb/host/eventlog"
)

// The todo event stream shared by the replay and recovery benchmarks:
// deterministic (seeded PCG), realistic in shape. A first stretch of adds
// builds a working set of replayLive todos, then a steady mix keeps it near
// that size:
//
//	todo/toggle           ~35 %  (1 in 50 aims at a deleted todo: a no-op)
//	todo/rename           ~20 %  (likewise)
//	todo/add, todo/delete ~45 %  together, balanced to hold the working set
//	todo/clear-completed  ~0.05 % (about one in 2000 events)
//
// ids are random 8-character strings of [a-z0-9], texts 36 to ~45 bytes of
// words. Events come from 16 producers with their own pseq, one millisecond
// apart, so the stream also obeys the chronicler's producer rules (the
// recovery benchmark writes it to a real log that nodb serve then opens).

const (
	replayLive      = 10000
	replayProducers = 16
	replaySeed      = 20240607
)

var todoWords = []string{
	"buy", "milk", "eggs", "bread", "call", "mom", "about", "the", "weekend", "plan",
	"fix", "bike", "tire", "book", "dentist", "appointment", "for", "next", "week", "send",
	"invoice", "to", "client", "review", "pull", "request", "water", "plants", "pay", "rent",
	"renew", "passport", "clean", "garage", "write", "blog", "post", "on", "event", "sourcing",
	"pick", "up", "kids", "from", "school", "order", "new", "printer", "ink", "update",
}

// todoEvent is one generated event.
type todoEvent struct {
	Type    string
	Payload []byte // JSON
}

type todoGen struct {
	rng      *rand.Rand
	live     []genTodo      // the working set
	index    map[string]int // id -> position in live
	used     map[string]bool
	deleted  []string // recently deleted ids (ring), for no-op toggles and renames
	delNext  int
	buf      []byte
	producer [replayProducers]uint64
	// clearEvery: on average one todo/clear-completed in this many events
	// (0: none).
	clearEvery int
}

type genTodo struct {
	id   string
	done bool
}

func newTodoGen(seed uint64, clearEvery int) *todoGen {
	return &todoGen{
		clearEvery: clearEvery,
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		index:      map[string]int{},
		used:       map[string]bool{},
		deleted:    make([]string, 0, 256),
	}
}

const idChars = "abcdefghijklmnopqrstuvwxyz0123456789"

func (g *todoGen) newID() string {
	for {
		var b [8]byte
		for i := range b {
			b[i] = idChars[g.rng.IntN(len(idChars))]
		}
		id := string(b[:])
		if !g.used[id] {
			g.used[id] = true
			return id
		}
	}
}

func (g *todoGen) text() string {
	n := 36 + g.rng.IntN(6)
	b := make([]byte, 0, n+12)
	for len(b) < n {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, todoWords[g.rng.IntN(len(todoWords))]...)
	}
	return string(b)
}

func (g *todoGen) remove(i int) {
	t := g.live[i]
	last := len(g.live) - 1
	g.live[i] = g.live[last]
	g.index[g.live[i].id] = i
	g.live = g.live[:last]
	delete(g.index, t.id)
	if len(g.deleted) < cap(g.deleted) {
		g.deleted = append(g.deleted, t.id)
	} else {
		g.deleted[g.delNext] = t.id
		g.delNext = (g.delNext + 1) % len(g.deleted)
	}
}

// pick returns the id to toggle or rename: usually a live todo, sometimes a
// deleted one (a late event from another client: the reducer ignores it).
func (g *todoGen) pick() (id string, i int) {
	if len(g.deleted) > 0 && g.rng.IntN(50) == 0 {
		return g.deleted[g.rng.IntN(len(g.deleted))], -1
	}
	i = g.rng.IntN(len(g.live))
	return g.live[i].id, i
}

func (g *todoGen) payload(id, text string) []byte {
	b := g.buf[:0]
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, id)
	if text != "" {
		b = append(b, `,"text":`...)
		b = strconv.AppendQuote(b, text)
	}
	b = append(b, '}')
	g.buf = b
	return append([]byte(nil), b...)
}

// next generates the k-th event (k from 0).
func (g *todoGen) next(k int) todoEvent {
	if k < replayLive || len(g.live) == 0 {
		return g.add()
	}
	if g.clearEvery > 0 && g.rng.IntN(g.clearEvery) == 0 {
		for i := 0; i < len(g.live); {
			if g.live[i].done {
				g.remove(i)
			} else {
				i++
			}
		}
		return todoEvent{Type: "todo/clear-completed", Payload: []byte(`{}`)}
	}
	r := g.rng.Float64()
	switch {
	case r < 0.35:
		id, i := g.pick()
		if i >= 0 {
			g.live[i].done = !g.live[i].done
		}
		return todoEvent{Type: "todo/toggle", Payload: g.payload(id, "")}
	case r < 0.55:
		id, _ := g.pick()
		return todoEvent{Type: "todo/rename", Payload: g.payload(id, g.text())}
	}
	// add or delete, leaning towards whichever brings the set back to size
	addShare := 0.5 + 2*float64(replayLive-len(g.live))/replayLive
	addShare = min(max(addShare, 0.1), 0.9)
	if g.rng.Float64() < addShare {
		return g.add()
	}
	i := g.rng.IntN(len(g.live))
	id := g.live[i].id
	g.remove(i)
	return todoEvent{Type: "todo/delete", Payload: g.payload(id, "")}
}

func (g *todoGen) add() todoEvent {
	id := g.newID()
	g.index[id] = len(g.live)
	g.live = append(g.live, genTodo{id: id})
	return todoEvent{Type: "todo/add", Payload: g.payload(id, g.text())}
}

// genTodoRecords returns n log records (seq 1..n) of the todo stream.
func genTodoRecords(n, clearEvery int) []eventlog.Record {
	g := newTodoGen(replaySeed, clearEvery)
	recs := make([]eventlog.Record, n)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var producers [replayProducers]string
	for i := range producers {
		producers[i] = "client-" + strconv.Itoa(i)
	}
	for k := range recs {
		ev := g.next(k)
		p := g.rng.IntN(replayProducers)
		g.producer[p]++
		recs[k] = eventlog.Record{
			Seq:      uint64(k + 1),
			Producer: producers[p],
			PSeq:     g.producer[p],
			Time:     t0 + int64(k)*int64(time.Millisecond),
			Type:     ev.Type,
			Payload:  ev.Payload,
		}
	}
	return recs
}

// todoStreamStats counts the event types of recs, for the report.
func todoStreamStats(recs []eventlog.Record) map[string]int {
	m := map[string]int{}
	for i := range recs {
		m[recs[i].Type]++
	}
	return m
}
