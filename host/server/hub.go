package server

import (
	"context"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
)

// A hub fans one view's updates out to the connections subscribed to it.
// Each patch or progress marker is encoded once per format, as a
// websocket.PreparedMessage, and the same message is queued on every
// subscriber's connection: fan-out costs one queue push per subscriber. A
// connection whose queue is full is marked lagging and skipped; once its
// queue drains it gets a fresh snapshot (reset) and follows again. Recent
// messages are kept in a ring so a client that reconnects with `since` gets
// exactly the patches it missed.
type hub struct {
	s  *Server
	v  *view.View
	vs *view.Subscription

	mu       sync.Mutex
	subs     map[*conn]*hubSub
	lastRoot statetree.Value
	lastSeq  uint64
	sentSeq  uint64 // seq of the last message (patch or progress) fanned out
	ring     ring
	ringFrom uint64 // the ring holds every change with seq > ringFrom
	ringSize int    // bytes held by the ring
	snap     snapCache

	jsonMu   sync.Mutex // guards the encoding of the last value read over HTTP
	jsonHash statetree.Hash
	jsonBody []byte
}

type hubSub struct {
	format  wire.Format
	lagging bool
}

type ringEntry struct {
	seq  uint64
	raw  []statetree.Op // the change, nil for progress
	size int            // what it counts against ringMaxBytes: its JSON's length, estimated until encoded
	ops  []byte         // raw as JSON, encoded on first use
	msgs [2]*websocket.PreparedMessage
	// unheld: too big for the ring, sent without being kept (see push), so
	// its encoding does not count against ringMaxBytes.
	unheld bool
}

// ring is a circular buffer of the most recent entries, oldest first. It
// grows by doubling up to ringMaxEntries+1 slots and is then reused in
// place: a slice trimmed at the front and appended at the back reallocated
// and copied the whole window every few thousand pushes (a fifth of a
// second per million events replayed, in the recovery benchmark's
// profile).
type ring struct {
	buf  []ringEntry
	head int // index of the oldest entry
	n    int // entries held
}

// at returns the i-th oldest entry.
func (r *ring) at(i int) *ringEntry { return &r.buf[(r.head+i)%len(r.buf)] }

// add appends e as the newest entry.
func (r *ring) add(e ringEntry) {
	if r.n == len(r.buf) {
		buf := make([]ringEntry, min(max(2*len(r.buf), 64), ringMaxEntries+1))
		for i := range r.n {
			buf[i] = *r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

// drop removes the oldest entry and returns it.
func (r *ring) drop() ringEntry {
	p := r.at(0)
	e := *p
	*p = ringEntry{} // let go of its ops and messages
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return e
}

type snapCache struct {
	seq  uint64
	ok   [2]bool
	body [2][]byte
}

const (
	ringMaxEntries = 8192
	ringMaxBytes   = 16 << 20
)

// newHub creates the hub of v, subscribed to it and holding its current
// state, so subscribers can join before run starts.
func newHub(s *Server, v *view.View) *hub {
	h := &hub{s: s, v: v, subs: map[*conn]*hubSub{}}
	h.vs = v.Subscribe(1 << 16)
	h.lastRoot, h.lastSeq = v.State()
	h.sentSeq, h.ringFrom = h.lastSeq, h.lastSeq
	return h
}

func (h *hub) run(ctx context.Context) {
	vs := h.vs
	batch := make([]view.Update, 0, 1024)
	for {
		var u view.Update
		var ok bool
		select {
		case u, ok = <-vs.C:
		case <-ctx.Done():
			vs.Close()
			return
		}
		if !ok {
			if !vs.Lagged() {
				return // the view stopped
			}
			// The hub itself fell behind the view: start over from the
			// view's current state and resynchronise every subscriber.
			h.s.logger.Warn("hub fell behind its view; resynchronising subscribers", "view", h.v.Name())
			vs = h.v.Subscribe(1 << 16)
			h.reset()
			continue
		}
		batch = append(batch[:0], u)
	drain:
		for len(batch) < cap(batch) || !batch[len(batch)-1].HasRoot {
			// The view sends a run's updates together and only the last
			// carries the state: a batch ends with one that does, so the
			// hub's state and seq always match.
			if batch[len(batch)-1].HasRoot {
				select {
				case u, ok = <-vs.C:
				default:
					break drain
				}
			} else {
				u, ok = <-vs.C
			}
			if !ok {
				break drain
			}
			batch = append(batch, u)
		}
		for len(batch) > 0 && !batch[len(batch)-1].HasRoot {
			// The subscription ended inside a run (the hub lagged): drop
			// the run's head; the reset that follows resends the state.
			batch = batch[:len(batch)-1]
		}
		h.fanOut(batch)
	}
}

// reset takes the view's current state as the hub's and sends every
// subscriber a fresh snapshot.
func (h *hub) reset() {
	root, seq := h.v.State()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastRoot, h.lastSeq, h.sentSeq = root, seq, seq
	h.ring, h.ringFrom, h.ringSize = ring{}, seq, 0
	for c, sub := range h.subs {
		sub.lagging = false
		h.sendSnapshot(c, sub, 0, true)
	}
}

func (h *hub) fanOut(batch []view.Update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range batch {
		if u.Seq <= h.lastSeq {
			continue // already in the state the hub started from
		}
		h.lastSeq = u.Seq
		if u.HasRoot {
			h.lastRoot = u.Root
		}
		if len(u.Ops) == 0 {
			continue
		}
		// Kept as ops (immutable values, shared with the state) and
		// encoded when a subscriber or a resume first needs them: a view
		// catching up with no one subscribed costs the hub no encoding.
		h.push(ringEntry{seq: u.Seq, raw: u.Ops, size: opsSize(u.Ops)})
	}
	if h.lastSeq > h.sentSeq {
		h.push(ringEntry{seq: h.lastSeq}) // progress marker
	}
}

// push adds e to the ring and queues it on every subscriber. An entry
// over ringMaxBytes on its own (one event that changed a large part of the
// state, a swap's or a catch-up's patch) is sent but not held: a client
// resuming from before it gets a snapshot instead.
func (h *hub) push(e ringEntry) {
	h.ring.add(e)
	h.ringSize += e.size
	for h.ring.n > ringMaxEntries || h.ringSize > ringMaxBytes {
		old := h.ring.drop()
		h.ringFrom = old.seq
		h.ringSize -= old.size
	}
	e2 := &e
	if h.ring.n > 0 {
		e2 = h.ring.at(h.ring.n - 1) // e, where its encodings are kept for later subscribers
	} else {
		e2.unheld = true
	}
	h.sentSeq = e.seq
	for c, sub := range h.subs {
		if sub.lagging {
			continue
		}
		if !c.sendView(h.message(e2, sub.format)) {
			sub.lagging = true
			c.markLagging()
		}
	}
}

// message returns e's prepared message in format f, encoding it on first use.
func (h *hub) message(e *ringEntry, f wire.Format) *websocket.PreparedMessage {
	if pm := e.msgs[f]; pm != nil {
		return pm
	}
	var data []byte
	if e.raw == nil {
		data = wire.AppendViewMessage(f, nil, wire.TypeProgress, 0, h.v.Name(), e.seq, false, nil)
	} else {
		if e.ops == nil {
			// From now on the JSON is held: count it exactly (the next
			// push trims the ring if this took it over ringMaxBytes).
			e.ops = statetree.AppendPatchJSON(make([]byte, 0, e.size), e.raw)
			if !e.unheld {
				h.ringSize += len(e.ops) - e.size
			}
			e.size = len(e.ops)
		}
		body := e.ops
		if f == wire.CBOR {
			var err error
			if body, err = wire.JSONToCBOR(e.ops); err != nil {
				panic("server: ops do not convert to CBOR: " + err.Error())
			}
		}
		data = wire.AppendViewMessage(f, nil, wire.TypePatch, 0, h.v.Name(), e.seq, false, body)
	}
	pm, err := websocket.NewPreparedMessage(frameType(f), data)
	if err != nil {
		panic("server: preparing message: " + err.Error())
	}
	e.msgs[f] = pm
	return pm
}

// opsSize estimates the length of ops as JSON without encoding them. While
// an entry is not encoded its memory is the ops' values, shared with the
// state until the state lets them go; once encoded, the ring counts the
// JSON exactly. Values are walked, nested ones included, but only as far
// as ringMaxBytes (an entry over it is not held at all): counting a map by
// its entries alone let the ring keep 8192 replaced megabyte documents.
func opsSize(ops []statetree.Op) int {
	n := 2
	for _, op := range ops {
		n += 32 + len(op.Path)
		n = valueSize(op.Value, n)
		if n > ringMaxBytes {
			break
		}
	}
	return n
}

// valueSize returns n plus about the length of v as JSON, stopping once
// the sum is over ringMaxBytes.
func valueSize(v statetree.Value, n int) int {
	switch v.Kind() {
	case statetree.KindString:
		return n + len(v.Str()) + 2
	case statetree.KindMap:
		n += 2
		v.Range(func(k string, e statetree.Value) bool {
			n = valueSize(e, n+len(k)+4)
			return n <= ringMaxBytes
		})
		return n
	case statetree.KindArray:
		n += 2
		for i := range v.Len() {
			if n = valueSize(v.Index(i), n+1); n > ringMaxBytes {
				break
			}
		}
		return n
	}
	return n + 8
}

func frameType(f wire.Format) int {
	if f == wire.CBOR {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

// sendSnapshot queues the state the hub holds as a snapshot for c. Called
// with h.mu held.
func (h *hub) sendSnapshot(c *conn, sub *hubSub, id uint64, reset bool) {
	f := sub.format
	if h.snap.seq != h.lastSeq {
		h.snap = snapCache{seq: h.lastSeq}
	}
	if !h.snap.ok[f] {
		if f == wire.CBOR {
			h.snap.body[f] = statetree.EncodeCBOR(h.lastRoot)
		} else {
			h.snap.body[f] = h.lastRoot.AppendJSON(nil)
		}
		h.snap.ok[f] = true
	}
	size := len(h.snap.body[f]) + 128 // the state and the message around it
	if !c.claimSnapshot(h, size) {
		sub.lagging = true
		c.markLagging()
		return
	}
	data := wire.AppendViewMessage(f, nil, wire.TypeSnapshot, id, h.v.Name(), h.lastSeq, reset, h.snap.body[f])
	pm, err := websocket.NewPreparedMessage(frameType(f), data)
	if err != nil {
		panic("server: preparing message: " + err.Error())
	}
	if !c.sendSnapshotMsg(h, pm, size) {
		sub.lagging = true
		c.markLagging()
	}
}

// subscribe adds c (or replaces its subscription) and queues either the
// missed messages after since or a snapshot.
func (h *hub) subscribe(c *conn, id uint64, since uint64, hasSince bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sub := &hubSub{format: c.format}
	h.subs[c] = sub
	if hasSince && since >= h.ringFrom && since <= h.lastSeq {
		data := wire.AppendReply(c.format, nil, &wire.Reply{Type: wire.TypeSubscribed, ID: id, View: h.v.Name(), Seq: since})
		pm, _ := websocket.NewPreparedMessage(frameType(c.format), data)
		if !c.sendView(pm) {
			sub.lagging = true
			c.markLagging()
			return
		}
		for i := range h.ring.n {
			e := h.ring.at(i)
			if e.seq <= since {
				continue
			}
			if !c.sendView(h.message(e, sub.format)) {
				sub.lagging = true
				c.markLagging()
				return
			}
		}
		return
	}
	h.sendSnapshot(c, sub, id, hasSince)
}

func (h *hub) unsubscribe(c *conn) {
	h.mu.Lock()
	delete(h.subs, c)
	h.mu.Unlock()
}

// resync sends a lagging subscriber a fresh snapshot once its queue drained.
func (h *hub) resync(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sub := h.subs[c]; sub != nil && sub.lagging {
		sub.lagging = false
		h.sendSnapshot(c, sub, 0, true)
	}
}
