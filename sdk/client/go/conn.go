package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nodb-dev/nodb/abi/wire"
)

// conn is one WebSocket connection of a Client.
type conn struct {
	ws     *websocket.Conn
	bc     *batchConn
	dead   chan struct{}
	once   sync.Once
	err    error
	gotAck bool // written by the reader, read by run after the reader exits
}

// fail records why the connection ended and closes it; the first call wins.
func (cn *conn) fail(err error) {
	cn.once.Do(func() {
		cn.err = err
		close(cn.dead)
		cn.ws.Close()
	})
}

// closeNormal sends a close frame (1000) and closes the connection.
func (cn *conn) closeNormal() {
	_ = cn.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	cn.fail(ErrClosed)
}

// batchConn lets the writer put many WebSocket frames into one write system
// call: between begin and end, writes are buffered. Outside a batch (the
// handshake, control frames from the reader) they go straight through.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
	err      error
}

const batchFlushSize = 64 << 10

// Write implements net.Conn.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return b.Conn.Write(p)
	}
	if b.err != nil {
		return 0, b.err
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchFlushSize {
		b.flushLocked()
	}
	return len(p), nil
}

func (b *batchConn) flushLocked() {
	if len(b.buf) > 0 && b.err == nil {
		_, b.err = b.Conn.Write(b.buf)
	}
	b.buf = b.buf[:0]
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// end writes what was buffered since begin and reports any write error.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.batching = false
	if cap(b.buf) > 4*batchFlushSize {
		b.buf = nil
	}
	return b.err
}

// dial opens one connection and reads the host's hello.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := c.dialer
	var bc *batchConn
	base := d.NetDialContext
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nc net.Conn
		var err error
		if base != nil {
			nc, err = base(ctx, network, addr)
		} else {
			var nd net.Dialer
			nc, err = nd.DialContext(ctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		bc = &batchConn{Conn: nc}
		return bc, nil
	}
	ws, resp, err := d.DialContext(ctx, c.url, c.opts.header)
	if err != nil {
		if resp != nil && resp.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			// The host's refusals (401 without a valid token, 403 without
			// a usable scope, 400, 503) carry a protocol error body.
			var we wire.Error
			if json.Unmarshal(body, &we) == nil && we.Code != "" {
				return nil, fmt.Errorf("nodb client: dial %s: HTTP %s: %w", c.url, resp.Status, &we)
			}
			return nil, fmt.Errorf("nodb client: dial %s: %w (HTTP %s: %s)", c.url, err, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil, fmt.Errorf("nodb client: dial %s: %w", c.url, err)
	}
	want := c.opts.format.String()
	if ws.Subprotocol() != want {
		ws.Close()
		return nil, fmt.Errorf("nodb client: dial %s: host answered with subprotocol %q, not %q", c.url, ws.Subprotocol(), want)
	}
	ws.SetReadLimit(64 << 20)
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	ws.SetReadDeadline(deadline)
	_, data, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("nodb client: waiting for hello from %s: %w", c.url, err)
	}
	var r wire.Reply
	if err := wire.DecodeReply(c.opts.format, data, &r); err != nil {
		ws.Close()
		return nil, fmt.Errorf("nodb client: hello from %s: %w", c.url, err)
	}
	if r.Type == wire.TypeError {
		ws.Close()
		return nil, &wire.Error{Code: r.Code, Message: r.Error}
	}
	if r.Type != wire.TypeHello {
		ws.Close()
		return nil, fmt.Errorf("nodb client: %s sent %q as its first message, not hello", c.url, r.Type)
	}
	ws.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.hello = wire.Hello{Protocol: r.Protocol, Server: r.Server, Version: r.Version, MaxFrame: r.MaxFrame, Head: r.Head}
	c.stats.Connects++
	c.mu.Unlock()
	return &conn{ws: ws, bc: bc, dead: make(chan struct{})}, nil
}

// run serves one connection after another until Close.
func (c *Client) run(ctx context.Context, cn *conn) {
	defer close(c.done)
	attempt := 0
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			cn.closeNormal()
			return
		}
		c.cur = cn
		c.sent = 0 // everything unacked goes out again, in pseq order
		c.mu.Unlock()

		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			c.reader(cn)
		}()
		c.writer(cn)
		cn.fail(ErrClosed)
		<-readerDone
		if cn.gotAck {
			attempt = 0
		}
		c.mu.Lock()
		c.cur = nil
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		c.report(cn.err)
		for {
			if !c.sleep(c.backoff(attempt)) {
				return
			}
			attempt++
			next, err := c.dial(ctx)
			if err == nil {
				cn = next
				break
			}
			if ctx.Err() != nil {
				return
			}
			c.report(err)
		}
	}
}

func (c *Client) report(err error) {
	if c.opts.onConnError != nil && err != nil && !errors.Is(err, ErrClosed) {
		c.opts.onConnError(err)
	}
}

// backoff is the delay before redial attempt n: exponential with jitter.
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.backoffMin
	for i := 0; i < n && d < c.opts.backoffMax; i++ {
		d *= 2
	}
	if d > c.opts.backoffMax {
		d = c.opts.backoffMax
	}
	// Jitter in [d/2, d).
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d unless the client is closed first; false means closed.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closing:
		return false
	}
}

// writer sends queued events (and keepalive pings) until the connection
// dies or the client closes.
func (c *Client) writer(cn *conn) {
	var tick <-chan time.Time
	if c.opts.pingInterval > 0 {
		t := time.NewTicker(c.opts.pingInterval)
		defer t.Stop()
		tick = t.C
	}
	msgType := websocket.TextMessage
	if c.opts.format == wire.CBOR {
		msgType = websocket.BinaryMessage
	}
	batch := make([]*call, 0, 64)
	pseqs := make([]uint64, 0, 64) // batch[i].pseq, read under c.mu: replyError renumbers
	buf := make([]byte, 0, 1024)
	for {
		c.mu.Lock()
		batch = append(batch[:0], c.queue[c.sent:]...)
		pseqs = pseqs[:0]
		c.sent = len(c.queue)
		for _, cl := range batch {
			if cl.sentEver {
				c.stats.Resent++
			}
			cl.sentEver = true
			pseqs = append(pseqs, cl.pseq)
		}
		c.mu.Unlock()
		if len(batch) > 0 {
			cn.ws.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout))
			cn.bc.begin()
			var err error
			for i, cl := range batch {
				buf = c.appendPublish(buf[:0], cl, pseqs[i])
				if err = cn.ws.WriteMessage(msgType, buf); err != nil {
					break
				}
			}
			if e := cn.bc.end(); err == nil {
				err = e
			}
			clear(batch)
			if cap(buf) > 1<<20 {
				buf = make([]byte, 0, 1024)
			}
			if err != nil {
				cn.fail(err)
				return
			}
			continue
		}
		select {
		case <-c.wake:
		case <-tick:
			if err := cn.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.writeTimeout)); err != nil {
				cn.fail(err)
				return
			}
		case <-cn.dead:
			return
		case <-c.closing:
			return
		}
	}
}

// reader reads the host's replies until the connection dies.
func (c *Client) reader(cn *conn) {
	ws := cn.ws
	deadPeer := c.opts.deadPeer
	var last time.Time
	extend := func() {
		if deadPeer <= 0 {
			return
		}
		now := time.Now()
		if now.Sub(last) > deadPeer/8 {
			last = now
			ws.SetReadDeadline(now.Add(deadPeer))
		}
	}
	extend()
	ws.SetPongHandler(func(string) error { extend(); return nil })
	ws.SetPingHandler(func(data string) error {
		extend()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		var ne net.Error
		if err == websocket.ErrCloseSent || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	var buf []byte
	for {
		_, rd, err := ws.NextReader()
		if err != nil {
			cn.fail(err)
			return
		}
		if buf, err = readInto(rd, buf[:0]); err != nil {
			cn.fail(err)
			return
		}
		extend()
		c.handle(cn, buf)
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

func readInto(r io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// handle processes one reply.
func (c *Client) handle(cn *conn, data []byte) {
	if c.opts.format == wire.JSON {
		if id, seq, dup, ok := parseAckJSON(data); ok {
			c.acked(cn, id, wire.Ack{Seq: seq, Duplicate: dup})
			return
		}
	}
	var r wire.Reply
	if err := wire.DecodeReply(c.opts.format, data, &r); err != nil {
		cn.fail(err)
		return
	}
	switch r.Type {
	case wire.TypeAck:
		c.acked(cn, r.ID, wire.Ack{Seq: r.Seq, Duplicate: r.Duplicate})
	case wire.TypeError:
		c.replyError(cn, &r)
	}
}

func (c *Client) acked(cn *conn, id uint64, ack wire.Ack) {
	cn.gotAck = true
	c.mu.Lock()
	if cl := c.byID[id]; cl != nil {
		c.stats.Acked++
		c.finishLocked(cl, ack, nil, c.indexLocked(cl))
	}
	c.mu.Unlock()
}

// replyError handles an error reply. Retryable ones (unavailable, and a
// pseq_gap caused by an earlier event of ours that is itself being retried)
// drop the connection: redialing re-sends every unacked event in pseq order.
// Others fail the event they name.
func (c *Client) replyError(cn *conn, r *wire.Reply) {
	werr := &wire.Error{Code: r.Code, Message: r.Error, ExpectedPSeq: r.ExpectedPSeq}
	if r.ID == 0 {
		cn.fail(werr)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.byID[r.ID]
	if cl == nil {
		return
	}
	switch r.Code {
	case wire.CodeUnavailable:
		cn.fail(werr)
		return
	case wire.CodePSeqGap:
		if r.ExpectedPSeq < cl.pseq {
			for _, q := range c.queue {
				if q.pseq == r.ExpectedPSeq {
					cn.fail(werr)
					return
				}
			}
		}
		if r.ExpectedPSeq < cl.pseq && c.failed[r.ExpectedPSeq] {
			// The host wants the pseq of an event of ours that failed for
			// good (refused as forbidden, say) and was never stored.
			// Nothing from there on is stored, so number the unfinished
			// events from there and send them again.
			p := r.ExpectedPSeq
			for _, q := range c.queue {
				if q.pseq >= r.ExpectedPSeq {
					q.pseq = p
					p++
				}
			}
			c.nextPSeq = p
			c.stats.Renumbered++
			clear(c.failed)
			cn.fail(werr)
			return
		}
	}
	if r.Code != wire.CodePSeqGap {
		c.failed[cl.pseq] = true // its pseq was not stored
	}
	c.finishLocked(cl, wire.Ack{}, werr, c.indexLocked(cl))
}
