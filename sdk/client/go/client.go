package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nodb-dev/nodb/abi/wire"
)

// ErrClosed is returned by publishes on a closed Client, and by publishes
// still waiting for an ack when Close is called.
var ErrClosed = errors.New("nodb client: closed")

// Option configures a Client in Dial.
type Option func(*options)

type options struct {
	format       wire.Format
	producer     string
	startPSeq    uint64
	backoffMin   time.Duration
	backoffMax   time.Duration
	maxInFlight  int
	header       http.Header
	token        string
	tlsConfig    *tls.Config
	dialer       *websocket.Dialer
	pingInterval time.Duration
	deadPeer     time.Duration
	writeTimeout time.Duration
	onConnError  func(error)
}

// WithFormat selects the encoding: wire.JSON (subprotocol nodb.v1.json, the
// default) or wire.CBOR (nodb.v1.cbor).
func WithFormat(f wire.Format) Option { return func(o *options) { o.format = f } }

// WithCBOR is WithFormat(wire.CBOR).
func WithCBOR() Option { return WithFormat(wire.CBOR) }

// WithProducer sets the producer id (1..256 bytes of UTF-8, no control
// characters). The default is a random id of the form "go-<16 hex digits>".
// A producer id that was used before must be combined with WithStartPSeq.
func WithProducer(id string) Option { return func(o *options) { o.producer = id } }

// WithStartPSeq sets the pseq of the first event this Client publishes (the
// default is 1). A persistent producer that resumes after a restart passes
// the pseq after the last one it knows was acked; passing the pseq of events
// it is not sure about re-sends them safely (they are acked as duplicates if
// the host already has them).
func WithStartPSeq(pseq uint64) Option { return func(o *options) { o.startPSeq = pseq } }

// WithBackoff sets the minimum and maximum delay between reconnect attempts
// (defaults 50ms and 2s). The delay doubles after each failed attempt, with
// jitter, and is reset once a connection gets an ack.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = min, max }
}

// WithMaxInFlight bounds the number of published events not yet acked
// (default 16384). Publish blocks while the bound is reached.
func WithMaxInFlight(n int) Option { return func(o *options) { o.maxInFlight = n } }

// WithHeader adds HTTP headers (for example Authorization) to the WebSocket
// handshake.
func WithHeader(h http.Header) Option { return func(o *options) { o.header = h } }

// WithToken authenticates with a bearer token (nodb token create) on every
// connection: the handshake carries "Authorization: Bearer TOKEN". A host
// without the token refuses the handshake with 401; a publish of an event
// type the token may not publish fails with a *wire.Error of code
// "forbidden" (see also WithHeader).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLSConfig sets the TLS configuration for wss:// (and https://) URLs,
// e.g. a RootCAs pool that trusts a private CA. It is applied to the
// Dialer of WithDialer too.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConfig = c } }

// WithDialer sets the gorilla/websocket Dialer used for every connection
// (TLS configuration, proxy, buffer sizes). Its Subprotocols and
// NetDialContext fields are overridden.
func WithDialer(d *websocket.Dialer) Option { return func(o *options) { o.dialer = d } }

// WithKeepalive sets how often the client sends WebSocket pings (default
// 10s; 0 disables them) and after how long without any frame from the host
// the connection is considered dead and redialed (default 30s; 0 disables).
func WithKeepalive(ping, deadPeer time.Duration) Option {
	return func(o *options) { o.pingInterval, o.deadPeer = ping, deadPeer }
}

// WithConnErrorHandler registers a function called (from the client's own
// goroutine; it must not block) each time a connection fails or a redial
// attempt fails. Useful for logging; the client retries regardless.
func WithConnErrorHandler(f func(error)) Option { return func(o *options) { o.onConnError = f } }

// Stats are counters of a Client, for monitoring and tests.
type Stats struct {
	// Connects is the number of successful connections, the first included.
	Connects uint64
	// Published is the number of events handed to the client.
	Published uint64
	// Acked is the number of events acked (duplicates included).
	Acked uint64
	// Resent is the number of times an event was sent again after its
	// connection failed.
	Resent uint64
	// InFlight is the number of events not yet acked or failed.
	InFlight int
	// Renumbered counts the times unfinished events were given new pseqs
	// because an earlier event failed for good without being stored.
	Renumbered uint64
}

// Client publishes events as one producer over one WebSocket connection,
// redialing as needed. All methods are safe for concurrent use.
type Client struct {
	url      string
	opts     options
	producer string
	dialer   websocket.Dialer

	mu       sync.Mutex
	nextPSeq uint64
	nextID   uint64
	queue    []*call // unfinished calls in pseq order
	sent     int     // queue[:sent] were written on the current connection
	byID     map[uint64]*call
	failed   map[uint64]bool // pseqs of events refused for good (not stored)
	closed   bool
	hello    wire.Hello
	idle     chan struct{} // closed when queue becomes empty; for Flush
	stats    Stats
	cur      *conn

	wake    chan struct{} // writer has work; capacity 1
	slots   chan struct{} // in-flight bound
	closing chan struct{} // closed by Close
	cancel  context.CancelFunc
	done    chan struct{} // closed when the run loop has exited
}

// call is one published event until it is acked or fails.
type call struct {
	id       uint64
	pseq     uint64
	typ      string
	payload  []byte // JSON text, or a CBOR item for the CBOR format
	sentEver bool
	finished bool
	ack      wire.Ack
	err      error
	done     chan struct{}
}

// Dial connects to a nodb host at url (ws:// or wss://, e.g.
// "ws://127.0.0.1:7070/v1/ws"; http:// and https:// are taken as ws:// and
// wss://) and waits for its hello. The first connection
// must succeed within ctx; later connection failures are handled by
// redialing in the background until Close.
func Dial(ctx context.Context, url string, opts ...Option) (*Client, error) {
	o := options{
		backoffMin:   50 * time.Millisecond,
		backoffMax:   2 * time.Second,
		maxInFlight:  1 << 14,
		pingInterval: 10 * time.Second,
		deadPeer:     30 * time.Second,
		writeTimeout: 10 * time.Second,
		startPSeq:    1,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.producer == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		o.producer = "go-" + hex.EncodeToString(b[:])
	}
	if err := (&wire.Event{Producer: o.producer, PSeq: 1, Type: "x"}).Validate(); err != nil {
		return nil, fmt.Errorf("nodb client: bad producer id: %w", err)
	}
	if o.startPSeq == 0 || o.startPSeq > wire.MaxSafeInt {
		return nil, fmt.Errorf("nodb client: start pseq %d is outside 1..2^53-1", o.startPSeq)
	}
	if o.maxInFlight < 1 {
		o.maxInFlight = 1
	}
	if o.backoffMin <= 0 {
		o.backoffMin = time.Millisecond
	}
	if o.backoffMax < o.backoffMin {
		o.backoffMax = o.backoffMin
	}
	switch {
	case strings.HasPrefix(url, "http://"):
		url = "ws://" + url[len("http://"):]
	case strings.HasPrefix(url, "https://"):
		url = "wss://" + url[len("https://"):]
	}
	c := &Client{
		url:      url,
		opts:     o,
		producer: o.producer,
		nextPSeq: o.startPSeq,
		byID:     make(map[uint64]*call),
		failed:   make(map[uint64]bool),
		wake:     make(chan struct{}, 1),
		slots:    make(chan struct{}, o.maxInFlight),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if o.dialer != nil {
		c.dialer = *o.dialer
	} else {
		c.dialer = websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	c.dialer.Subprotocols = []string{o.format.String()}
	if o.tlsConfig != nil {
		c.dialer.TLSClientConfig = o.tlsConfig
	}
	if o.token != "" {
		h := o.header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Authorization", "Bearer "+o.token)
		c.opts.header = h
	}
	first, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(runCtx, first)
	return c, nil
}

// Producer returns the producer id of the client.
func (c *Client) Producer() string { return c.producer }

// NextPSeq returns the pseq the next published event will get. A persistent
// producer can store it and pass it to WithStartPSeq after a restart (once
// Flush has returned, every event below it is acked).
func (c *Client) NextPSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextPSeq
}

// Hello returns the hello message of the most recent connection.
func (c *Client) Hello() wire.Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.InFlight = len(c.queue)
	return s
}

// Future is the outcome of a PublishAsync, available once Done is closed.
type Future struct {
	c  *call
	mu *sync.Mutex // the Client's, which guards c.pseq (nil: failed before queueing)
}

// Done is closed when the event has been acked or has failed.
func (f *Future) Done() <-chan struct{} { return f.c.done }

// PSeq is the pseq the event was given (0 if it failed before getting one).
// Until Done it may still change: when an earlier event of this Client is
// refused for good, the unfinished events after it are numbered again from
// its pseq (Stats.Renumbered).
func (f *Future) PSeq() uint64 {
	if f.mu == nil {
		return f.c.pseq
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c.pseq
}

// Result waits for Done and returns the ack or the error.
func (f *Future) Result() (wire.Ack, error) {
	<-f.c.done
	return f.c.ack, f.c.err
}

// Wait is Result with a context: when ctx ends first it returns ctx.Err()
// and the event stays queued (it may still be stored).
func (f *Future) Wait(ctx context.Context) (wire.Ack, error) {
	select {
	case <-f.c.done:
		return f.c.ack, f.c.err
	case <-ctx.Done():
		select {
		case <-f.c.done:
			return f.c.ack, f.c.err
		default:
		}
		return wire.Ack{}, ctx.Err()
	}
}

func failedFuture(err error) *Future {
	cl := &call{err: err, finished: true, done: make(chan struct{})}
	close(cl.done)
	return &Future{c: cl}
}

// Publish sends one event of type eventType and waits until the host has
// made it durable. payload is marshalled with encoding/json unless it is a
// json.RawMessage or []byte (taken as JSON text, which must be valid); nil is
// JSON null.
//
// Publish retries across connection failures and "unavailable" errors until
// ctx ends. A duplicate ack (the event had been stored before) is a success.
// Errors the host reports that retrying cannot fix are returned as
// *wire.Error (codes bad_request, pseq_gap, too_large, ...).
//
// If ctx ends before the ack, Publish returns ctx.Err(). An event that was
// not yet sent is then withdrawn when no later event depends on its pseq;
// otherwise the client keeps delivering it in the background (so later
// events do not leave a pseq gap), and it may be stored.
func (c *Client) Publish(ctx context.Context, eventType string, payload any) (wire.Ack, error) {
	f := c.PublishAsync(ctx, eventType, payload)
	select {
	case <-f.c.done:
		return f.c.ack, f.c.err
	case <-ctx.Done():
	}
	c.abandon(f.c, ctx.Err())
	select {
	case <-f.c.done:
		if f.c.err == nil {
			return f.c.ack, nil
		}
	default:
	}
	return wire.Ack{}, ctx.Err()
}

// PublishAsync queues one event like Publish and returns at once with a
// Future for its outcome. ctx only bounds the wait for room when
// WithMaxInFlight events are already in flight; once queued, the event is
// delivered until acked, failed or the client is closed. Events queued by
// one goroutine get increasing pseqs in call order.
func (c *Client) PublishAsync(ctx context.Context, eventType string, payload any) *Future {
	body, err := c.encodePayload(payload)
	if err != nil {
		return failedFuture(err)
	}
	if err := (&wire.Event{Producer: c.producer, PSeq: 1, Type: eventType}).Validate(); err != nil {
		return failedFuture(&wire.Error{Code: wire.CodeBadRequest, Message: "event: " + err.Error()})
	}
	c.mu.Lock()
	maxFrame := c.hello.MaxFrame
	c.mu.Unlock()
	if maxFrame <= 0 {
		maxFrame = wire.DefaultMaxFrame
	}
	n := len(body) + len(c.producer) + len(eventType) + 128
	if c.opts.format == wire.JSON {
		// Names are JSON strings on the wire: count their escapes.
		n += jsonEscapes(c.producer) + jsonEscapes(eventType)
	}
	if n > maxFrame {
		return failedFuture(&wire.Error{Code: wire.CodeTooLarge, Message: fmt.Sprintf("event of about %d bytes is over the host's frame limit of %d bytes", n, maxFrame)})
	}
	select {
	case c.slots <- struct{}{}:
	default:
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return failedFuture(ctx.Err())
		case <-c.closing:
			return failedFuture(ErrClosed)
		}
	}
	cl := &call{typ: eventType, payload: body, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.slots
		return failedFuture(ErrClosed)
	}
	if c.nextPSeq > wire.MaxSafeInt {
		c.mu.Unlock()
		<-c.slots
		return failedFuture(fmt.Errorf("nodb client: producer %q has used every pseq up to 2^53-1", c.producer))
	}
	c.nextID++
	if c.nextID > wire.MaxSafeInt {
		c.nextID = 1
	}
	cl.id = c.nextID
	cl.pseq = c.nextPSeq
	c.nextPSeq++
	c.queue = append(c.queue, cl)
	c.byID[cl.id] = cl
	c.stats.Published++
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return &Future{c: cl, mu: &c.mu}
}

// jsonEscapes returns how many bytes longer s is as a JSON string, as
// appendJSONString writes it, than it is in memory, quotes aside.
func jsonEscapes(s string) int {
	var buf [128]byte
	return len(appendJSONString(buf[:0], s)) - len(s) - 2
}

// encodePayload turns a payload into the bytes sent on the wire: JSON text,
// or a CBOR item for the CBOR format. It runs before a pseq is given, so a
// payload the host would refuse never leaves a hole in the pseq sequence.
func (c *Client) encodePayload(payload any) ([]byte, error) {
	var js []byte
	switch p := payload.(type) {
	case nil:
		js = []byte("null")
	case json.RawMessage:
		js = p
	case []byte:
		js = p
	default:
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("nodb client: cannot marshal payload: %w", err)
		}
		js = b
	}
	if len(js) == 0 {
		js = []byte("null")
	} else if _, isRaw := payload.(json.RawMessage); isRaw || isBytes(payload) {
		if !json.Valid(js) {
			return nil, &wire.Error{Code: wire.CodeBadRequest, Message: "payload is not valid JSON"}
		}
	}
	if c.opts.format == wire.CBOR {
		item, err := wire.JSONToCBOR(js)
		if err != nil {
			return nil, &wire.Error{Code: wire.CodeBadRequest, Message: "payload cannot be converted to CBOR: " + err.Error()}
		}
		return item, nil
	}
	return js, nil
}

func isBytes(v any) bool { _, ok := v.([]byte); return ok }

// abandon withdraws a call whose caller stopped waiting, if it was never sent
// and is the newest pseq; otherwise it stays queued and is delivered.
func (c *Client) abandon(cl *call, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl.finished || cl.sentEver || cl.pseq != c.nextPSeq-1 || len(c.queue) == 0 || c.queue[len(c.queue)-1] != cl {
		return
	}
	c.queue[len(c.queue)-1] = nil
	c.queue = c.queue[:len(c.queue)-1]
	if c.sent > len(c.queue) {
		c.sent = len(c.queue)
	}
	c.nextPSeq--
	c.stats.Published--
	c.finishLocked(cl, wire.Ack{}, err, -1)
}

// finishLocked completes a call. idx is its index in c.queue, or -1 when it
// has already been removed from the queue (or must be looked up).
func (c *Client) finishLocked(cl *call, ack wire.Ack, err error, idx int) {
	if cl.finished {
		return
	}
	cl.finished = true
	cl.ack, cl.err = ack, err
	delete(c.byID, cl.id)
	if idx >= 0 {
		c.removeLocked(idx)
	}
	close(cl.done)
	<-c.slots
	if len(c.queue) == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

func (c *Client) removeLocked(idx int) {
	if idx == 0 {
		c.queue[0] = nil
		c.queue = c.queue[1:]
	} else {
		copy(c.queue[idx:], c.queue[idx+1:])
		c.queue[len(c.queue)-1] = nil
		c.queue = c.queue[:len(c.queue)-1]
	}
	if idx < c.sent {
		c.sent--
	}
}

// indexLocked finds cl in the queue; acks normally arrive for the head.
func (c *Client) indexLocked(cl *call) int {
	for i, q := range c.queue {
		if q == cl {
			return i
		}
	}
	return -1
}

// Flush waits until every event published so far has been acked or has
// failed, or until ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the connection and stops redialing. Events still waiting for
// an ack fail with ErrClosed (they may or may not have been stored; a
// persistent producer re-sends them with the same pseqs). Call Flush first
// to wait for outstanding acks.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	for len(c.queue) > 0 {
		c.finishLocked(c.queue[0], wire.Ack{}, ErrClosed, 0)
	}
	cur := c.cur
	c.mu.Unlock()
	close(c.closing)
	c.cancel()
	if cur != nil {
		cur.closeNormal()
	}
	<-c.done
	return nil
}
