package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/auth"
	"github.com/nodb-dev/nodb/host/chronicler"
)

// conn is one WebSocket client. A reader goroutine decodes messages and
// submits publishes; replies are queued as slots in request order, and one
// writer goroutine sends each slot once it is complete, so replies come back
// in the order requests were sent even though acks arrive from the
// chronicler in batches.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	format wire.Format
	// p is the principal authenticated at the handshake; every publish and
	// subscribe is checked against its scopes.
	p      *auth.Principal
	ctx    context.Context
	cancel context.CancelFunc

	slots    chan *slot // request order; closed by the reader when it stops
	drainOne sync.Once
	draining chan struct{}

	// Subscriptions. out carries view messages (snapshots, patches,
	// progress) queued by hubs; it is bounded so a slow reader cannot make
	// the server buffer without limit.
	out     chan viewMsg
	lagging atomic.Bool
	wake    chan struct{}
	hubsMu  sync.Mutex
	hubs    map[*hub]struct{}
	// Snapshots in out not yet written. Each is a copy of a whole state
	// made for this connection alone (it carries the subscribe's id), so
	// they are bounded: the first of each view is always queued, more only
	// while snapBytes stays within maxQueuedSnapshotBytes (see
	// claimSnapshot). Guarded by snapMu.
	snapMu    sync.Mutex
	snaps     map[*hub]int
	snapBytes int
}

// maxQueuedSnapshotBytes bounds the snapshots waiting in one connection's
// queue beyond the first of each view. A client that subscribes again and
// again without reading would otherwise make the server hold a copy of the
// state per subscribe, up to SendQueue of them.
const maxQueuedSnapshotBytes = 64 << 20

// viewMsg is a queued view message. For a snapshot, snapOf is its hub and
// snapSize what claimSnapshot counted for it; nil and 0 for the messages
// shared with other connections.
type viewMsg struct {
	pm       *websocket.PreparedMessage
	snapOf   *hub
	snapSize int
}

// sendView queues a view message without blocking; false when the queue is
// full (the subscriber is lagging).
func (c *conn) sendView(pm *websocket.PreparedMessage) bool {
	select {
	case c.out <- viewMsg{pm: pm}:
		return true
	default:
		return false
	}
}

// claimSnapshot reports whether c may be queued a snapshot of h of size
// bytes now: yes if none of h waits in the queue, or if the snapshots
// waiting stay within maxQueuedSnapshotBytes with it; no otherwise (the
// subscriber is then treated as lagging: it gets a fresh snapshot once its
// queue drains). A true must be followed by sendSnapshotMsg.
func (c *conn) claimSnapshot(h *hub, size int) bool {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	if c.snaps[h] > 0 && c.snapBytes+size > maxQueuedSnapshotBytes {
		return false
	}
	c.snaps[h]++
	c.snapBytes += size
	return true
}

// releaseSnapshot notes that a snapshot of h of size bytes no longer waits
// for c.
func (c *conn) releaseSnapshot(h *hub, size int) {
	c.snapMu.Lock()
	if c.snaps[h]--; c.snaps[h] <= 0 {
		delete(c.snaps, h)
	}
	c.snapBytes -= size
	c.snapMu.Unlock()
}

// sendSnapshotMsg queues a snapshot of h claimed with claimSnapshot, like
// sendView.
func (c *conn) sendSnapshotMsg(h *hub, pm *websocket.PreparedMessage, size int) bool {
	select {
	case c.out <- viewMsg{pm: pm, snapOf: h, snapSize: size}:
		return true
	default:
		c.releaseSnapshot(h, size)
		return false
	}
}

// markLagging notes that a hub skipped this connection; the writer sends
// fresh snapshots once the queue has drained.
func (c *conn) markLagging() {
	c.lagging.Store(true)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// resyncIfDrained sends lagging subscriptions fresh snapshots once the queue
// is empty.
func (c *conn) resyncIfDrained() {
	if len(c.out) == 0 && c.lagging.Swap(false) {
		c.hubsMu.Lock()
		for h := range c.hubs {
			h.resync(c)
		}
		c.hubsMu.Unlock()
	}
}

// slot is one reply waiting for its turn. It embeds the chronicler request so
// a publish costs one allocation.
type slot struct {
	req  chronicler.Request
	id   uint64
	done chan struct{} // closed when msg is ready
	msg  []byte
}

var slotPool = sync.Pool{New: func() any { return &slot{done: make(chan struct{}, 1)} }}

func newSlot(id uint64) *slot {
	sl := slotPool.Get().(*slot)
	sl.id = id
	sl.msg = sl.msg[:0]
	return sl
}

func (sl *slot) complete() { sl.done <- struct{}{} }

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		httpError(w, http.StatusBadRequest, wire.Errorf(wire.CodeBadRequest, "this endpoint speaks WebSocket; connect with subprotocol %s or %s", wire.SubprotocolJSON, wire.SubprotocolCBOR))
		return
	}
	format, ok := wire.Format(0), false
	for _, p := range websocket.Subprotocols(r) {
		if format, ok = wire.FormatOf(p); ok {
			break
		}
	}
	if !ok {
		httpError(w, http.StatusBadRequest, wire.Errorf(wire.CodeBadRequest, "no supported subprotocol offered; offer %s (JSON text frames) or %s (CBOR binary frames) in Sec-WebSocket-Protocol", wire.SubprotocolJSON, wire.SubprotocolCBOR))
		return
	}
	if s.draining.Load() {
		httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "shutting down"))
		return
	}
	p := principal(r)
	if err := p.CheckWebSocket(); err != nil {
		s.refuse(w, r, p, err)
		return
	}
	if !s.checkOrigin(r) {
		s.logger.Warn("websocket refused: origin not allowed", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		httpError(w, http.StatusForbidden, wire.Errorf(wire.CodeForbidden, "origin %q is not allowed; add it with nodb serve --allow-origin", r.Header.Get("Origin")))
		return
	}
	up := s.upgrader
	up.CheckOrigin = func(*http.Request) bool { return true } // checked above, with a clear reply
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.logger.Debug("websocket upgrade failed", "error", err)
		return
	}
	ws.SetReadLimit(int64(s.cfg.MaxFrame)) // before the first read
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, ws: ws, format: format, p: p, ctx: ctx, cancel: cancel,
		slots: make(chan *slot, s.cfg.MaxInFlight), draining: make(chan struct{}),
		out: make(chan viewMsg, s.cfg.SendQueue), hubs: map[*hub]struct{}{}, snaps: map[*hub]int{}, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutting down"), time.Now().Add(time.Second))
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.connGauge.Inc()
	go c.writeLoop()
	c.readLoop()
}

// revoked closes the connection with 1008 because its token was revoked
// or its scopes changed.
func (c *conn) revoked() {
	c.s.logger.Info("closing a WebSocket: its token was revoked or its scopes changed", "token", c.p.Name)
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation,
		"token revoked or its scopes changed; reconnect with a valid token"), time.Now().Add(time.Second))
}

func (c *conn) drain() {
	c.drainOne.Do(func() {
		close(c.draining)
		c.ws.SetReadDeadline(time.Now()) // unblock the reader
	})
}

func (c *conn) isDraining() bool {
	select {
	case <-c.draining:
		return true
	default:
		return false
	}
}

// push queues a completed reply.
func (c *conn) push(msg []byte) {
	sl := newSlot(0)
	sl.msg = append(sl.msg, msg...)
	sl.complete()
	c.slots <- sl
}

func (c *conn) readLoop() {
	defer close(c.slots)
	s := c.s
	hello := wire.Reply{Type: wire.TypeHello, Protocol: wire.ProtocolVersion, Server: "nodb", Version: s.cfg.Version, MaxFrame: s.cfg.MaxFrame}
	if ch := s.chron.Load(); ch != nil {
		hello.Head = ch.Head()
	}
	c.push(wire.AppendReply(c.format, nil, &hello))
	c.ws.SetReadDeadline(time.Now().Add(s.cfg.PongTimeout))
	c.ws.SetPongHandler(func(string) error {
		if !c.isDraining() {
			c.ws.SetReadDeadline(time.Now().Add(s.cfg.PongTimeout))
		}
		return nil
	})
	want := websocket.TextMessage
	if c.format == wire.CBOR {
		want = websocket.BinaryMessage
	}
	var req wire.Request
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			if !c.isDraining() {
				switch {
				case errors.Is(err, websocket.ErrReadLimit):
					s.logger.Info("websocket closed: frame over the size limit", "limit", s.cfg.MaxFrame)
				case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
				default:
					s.logger.Debug("websocket read ended", "error", err)
				}
			}
			return
		}
		if c.isDraining() {
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(s.cfg.PongTimeout))
		if mt != want {
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError,
				"frame type does not match the subprotocol: "+c.format.String()+" uses "+map[int]string{websocket.TextMessage: "text", websocket.BinaryMessage: "binary"}[want]+" frames"),
				time.Now().Add(time.Second))
			return
		}
		if !s.cfg.Auth.Valid(c.p) {
			c.revoked()
			return
		}
		if err := wire.DecodeRequest(c.format, data, &req); err != nil {
			var de *wire.DecodeError
			errors.As(err, &de)
			c.push(wire.AppendError(c.format, nil, de.ID, &wire.Error{Code: wire.CodeBadRequest, Message: de.Message}))
			continue
		}
		switch req.Type {
		case wire.TypePublish:
			c.publish(&req)
		case wire.TypeSubscribe:
			if !c.p.CanRead(req.View) {
				c.push(wire.AppendError(c.format, nil, req.ID, authWire(c.p.CheckRead(req.View))))
				continue
			}
			h := s.hub(req.View)
			if h == nil && s.chron.Load() == nil {
				c.push(wire.AppendError(c.format, nil, req.ID, wire.Errorf(wire.CodeUnavailable,
					"the host is starting and has not loaded its views yet; subscribe again shortly")))
				continue
			}
			if h == nil {
				c.push(wire.AppendError(c.format, nil, req.ID, wire.Errorf(wire.CodeNotFound,
					"no view named %q; GET /v1/views lists the views", req.View)))
				continue
			}
			c.hubsMu.Lock()
			c.hubs[h] = struct{}{}
			c.hubsMu.Unlock()
			h.subscribe(c, req.ID, req.Since, req.HasSince)
		case wire.TypeUnsubscribe:
			if h := s.hub(req.View); h != nil {
				h.unsubscribe(c)
				c.hubsMu.Lock()
				delete(c.hubs, h)
				c.hubsMu.Unlock()
			}
			c.push(wire.AppendReply(c.format, nil, &wire.Reply{Type: wire.TypeUnsubscribed, ID: req.ID, View: req.View}))
		case wire.TypePing:
			c.push(wire.AppendReply(c.format, nil, &wire.Reply{Type: wire.TypePong, ID: req.ID}))
		default:
			c.push(wire.AppendError(c.format, nil, req.ID, wire.Errorf(wire.CodeUnknownType,
				"unknown message type %q; this server knows publish, subscribe, unsubscribe, ping", req.Type)))
		}
	}
}

func (c *conn) publish(req *wire.Request) {
	if !c.p.CanPublish(req.Event.Type) {
		c.push(wire.AppendError(c.format, nil, req.ID, authWire(c.p.CheckPublish(req.Event.Type))))
		return
	}
	ch := c.s.chron.Load()
	if ch == nil {
		c.push(wire.AppendError(c.format, nil, req.ID, wire.Errorf(wire.CodeUnavailable, "the host is recovering its log; retry with the same producer and pseq")))
		return
	}
	sl := newSlot(req.ID)
	sl.req = chronicler.Request{Event: req.Event, Done: c.publishDone, Ctx: sl}
	c.slots <- sl // blocks when MaxInFlight publishes await acks
	ch.Submit(c.ctx, &sl.req)
}

// publishDone runs on the chronicler's writer goroutine: encode and hand over.
// The event is dropped at once: the slot may wait in c.slots for a client
// that does not read its replies, and MaxInFlight slots each holding a
// payload of up to MaxFrame bytes would let one connection hold far more
// than the chronicler's own byte bounds allow.
func (c *conn) publishDone(r *chronicler.Request, res chronicler.Result) {
	sl := r.Ctx.(*slot)
	if res.Err != nil {
		sl.msg = wire.AppendError(c.format, sl.msg, sl.id, res.Err)
	} else {
		sl.msg = wire.AppendAck(c.format, sl.msg, sl.id, res.Ack)
	}
	r.Event = wire.Event{}
	sl.complete()
}

func (c *conn) writeLoop() {
	s := c.s
	defer func() {
		c.hubsMu.Lock()
		for h := range c.hubs {
			h.unsubscribe(c)
		}
		c.hubsMu.Unlock()
		c.cancel()
		c.ws.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.connGauge.Dec()
		s.wg.Done()
	}()
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	mt := websocket.TextMessage
	if c.format == wire.CBOR {
		mt = websocket.BinaryMessage
	}
	broken := false
	for {
		select {
		case sl, ok := <-c.slots:
			if !ok {
				// The reader stopped. When we are draining, every reply
				// has been written: say goodbye properly.
				if c.isDraining() && !broken {
					c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
					lingerClose(c.ws.NetConn())
				}
				return
			}
			<-sl.done
			if !broken {
				c.ws.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
				if err := c.ws.WriteMessage(mt, sl.msg); err != nil {
					broken = true // keep draining slots so the reader never blocks
					c.ws.Close()
				}
			}
			sl.req = chronicler.Request{}
			slotPool.Put(sl)
		case m := <-c.out:
			if !broken {
				c.ws.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
				if err := c.ws.WritePreparedMessage(m.pm); err != nil {
					s.logger.Info("closing a subscriber that is not reading", "error", err)
					broken = true
					c.ws.Close()
				}
			}
			if m.snapOf != nil {
				c.releaseSnapshot(m.snapOf, m.snapSize)
			}
			c.resyncIfDrained()
		case <-c.wake:
			c.resyncIfDrained()
		case <-ping.C:
			if !s.cfg.Auth.Valid(c.p) {
				c.revoked()
				broken = true
				c.ws.Close()
			}
			if !broken {
				c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second))
			}
		}
	}
}

// lingerClose ends a connection the server stopped reading: it sends FIN
// (half-close) and discards what the client still sends until it closes too
// (at most 2 s). Closing a socket with unread bytes in its receive buffer
// makes the kernel send RST, and the client would then lose the acks and the
// close frame still in flight to it.
func lingerClose(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, io.LimitReader(nc, 64<<20))
}
