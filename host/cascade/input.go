package cascade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
)

type troubleKey struct{}

// withTrouble gives an input's Follow a way to say why it cannot follow.
func withTrouble(ctx context.Context, f func(string)) context.Context {
	return context.WithValue(ctx, troubleKey{}, f)
}

// reportTrouble tells the feed why the input cannot follow now ("" when it
// can again); it shows in the cascade view's status note.
func reportTrouble(ctx context.Context, why string) {
	if f, ok := ctx.Value(troubleKey{}).(func(string)); ok {
		f(why)
	}
}

// PushFunc receives an input's state as of seq: ops are the changes from
// its previous state (nil for a seq that changed nothing); reset says the
// changes in between are unknown and root replaces the state.
type PushFunc func(seq uint64, ops []statetree.Op, root statetree.Value, reset bool)

// Input is one upstream view of a cascade.
type Input interface {
	// Name is the input's name as the plugin declared it.
	Name() string
	// Source says where the input comes from: "local" or the remote
	// host's URL. All inputs of a cascade must share it.
	Source() string
	// Follow pushes the input's current state (reset), then every change,
	// until ctx ends. It returns an error only when following is
	// impossible (the view does not exist); a lost connection is retried.
	Follow(ctx context.Context, push PushFunc) error
	// StateAt returns the input's state as of a past seq.
	StateAt(ctx context.Context, seq uint64) (statetree.Value, error)
}

// LocalInput is a view of this host.
type LocalInput struct {
	// InputName is the name the plugin declared.
	InputName string
	// Lookup returns the view (it may be replaced by a restart of the
	// view); nil if there is none.
	Lookup func() *view.View
	// Buffer is the subscription's buffer, in updates (default 8192; a
	// consumer that falls further behind resubscribes and gets one diff).
	Buffer int
}

// Name implements Input.
func (l *LocalInput) Name() string { return l.InputName }

// Source implements Input.
func (l *LocalInput) Source() string { return "local" }

// Follow implements Input.
func (l *LocalInput) Follow(ctx context.Context, push PushFunc) error {
	n := l.Buffer
	if n <= 0 {
		n = 8192
	}
	for {
		v := l.Lookup()
		if v == nil {
			return fmt.Errorf("cascade: input %q: no view of that name on this host", l.InputName)
		}
		sub := v.Subscribe(n)
		root, seq := v.State()
		push(seq, nil, root, true)
		for alive := true; alive; {
			select {
			case <-ctx.Done():
				sub.Close()
				return nil
			case u, ok := <-sub.C:
				if !ok {
					alive = false
					break
				}
				if u.Seq <= seq {
					continue
				}
				if u.HasRoot {
					root = u.Root
				} else if len(u.Ops) > 0 {
					// Inside a run the view keeps only the ops (see
					// view.Update): the state at this seq is the last one
					// with the ops applied.
					next, err := statetree.Apply(root, u.Ops)
					if err != nil {
						// Cannot happen for ops a view recorded; start over
						// from a fresh state rather than follow a wrong one.
						sub.Close()
						alive = false
						break
					}
					root = next
				}
				push(u.Seq, u.Ops, root, false)
			}
		}
		// The subscription ended: the consumer lagged (resubscribe with a
		// fresh state) or the view stopped (wait for it to come back).
		if !sub.Lagged() {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// StateAt implements Input.
func (l *LocalInput) StateAt(ctx context.Context, seq uint64) (statetree.Value, error) {
	v := l.Lookup()
	if v == nil {
		return statetree.Value{}, fmt.Errorf("no view named %q on this host", l.InputName)
	}
	if err := v.WaitFor(ctx, seq); err != nil {
		return statetree.Value{}, err
	}
	return v.StateAt(ctx, seq)
}

// RemoteInput is a view on another nodb host, followed over the client
// protocol (GET /v1/ws, subscribe with resume) and read in the past over
// HTTP (GET /v1/views/{view}/state?at=SEQ).
type RemoteInput struct {
	// InputName is the name the plugin declared.
	InputName string
	// URL is the upstream host: http(s):// or ws(s)://host:port, with an
	// optional path /v1/ws and query parameters view (the upstream view's
	// name, default InputName) and access_token (a token of the upstream
	// host with read access to the view).
	URL    string
	Logger hclog.Logger

	base, wsURL, view, token string
}

// ParseRemote checks a remote input's URL and returns the input.
func ParseRemote(name, raw string, logger hclog.Logger) (*RemoteInput, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream %s=%s: %w", name, raw, err)
	}
	r := &RemoteInput{InputName: name, URL: raw, Logger: logger}
	if r.Logger == nil {
		r.Logger = hclog.NewNullLogger()
	}
	var hs, ws string
	switch u.Scheme {
	case "ws", "http":
		hs, ws = "http", "ws"
	case "wss", "https":
		hs, ws = "https", "wss"
	default:
		return nil, fmt.Errorf("upstream %s=%s: use a ws://, wss://, http:// or https:// URL of the upstream nodb host", name, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("upstream %s=%s: the URL has no host", name, raw)
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" && p != "/v1/ws" {
		return nil, fmt.Errorf("upstream %s=%s: the path must be empty or /v1/ws", name, raw)
	}
	q := u.Query()
	r.view = q.Get("view")
	if r.view == "" {
		r.view = name
	}
	r.token = q.Get("access_token")
	r.base = hs + "://" + u.Host
	wq := url.Values{}
	if r.token != "" {
		wq.Set("access_token", r.token)
	}
	r.wsURL = ws + "://" + u.Host + "/v1/ws"
	if len(wq) > 0 {
		r.wsURL += "?" + wq.Encode()
	}
	return r, nil
}

// Name implements Input.
func (r *RemoteInput) Name() string { return r.InputName }

// Source implements Input: the upstream host.
func (r *RemoteInput) Source() string { return r.base }

// Follow implements Input: it subscribes, keeps a mirror of the upstream
// view by applying its patches, resumes with since after a lost connection
// (missed patches, or a reset snapshot when the upstream no longer holds
// them), and retries with backoff for as long as ctx lasts.
func (r *RemoteInput) Follow(ctx context.Context, push PushFunc) error {
	var (
		have    bool
		mirror  statetree.Value
		seq     uint64
		backoff = minRetry
	)
	for ctx.Err() == nil {
		err := r.session(ctx, &have, &mirror, &seq, push)
		if ctx.Err() != nil {
			return nil
		}
		reportTrouble(ctx, fmt.Sprintf("%v (retrying)", err))
		var we *wire.Error
		if errors.As(err, &we) && (we.Code == wire.CodeNotFound || we.Code == "forbidden" || we.Code == "unauthorized") {
			// Not retried quickly: the upstream must be fixed first.
			r.Logger.Error("upstream refused the subscription", "input", r.InputName, "url", r.base, "error", err)
			backoff = maxRetry
		} else {
			r.Logger.Warn("upstream connection lost; reconnecting", "input", r.InputName, "url", r.base, "seq", seq, "error", err, "in", backoff)
		}
		if !waitRetry(ctx, &backoff) {
			return nil
		}
	}
	return nil
}

// Delays between attempts at an upstream call: from minRetry, doubling up
// to maxRetry.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

// waitRetry waits *delay, then doubles it (up to maxRetry); false if ctx
// ended first.
func waitRetry(ctx context.Context, delay *time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*delay):
	}
	*delay = min(2**delay, maxRetry)
	return true
}

func (r *RemoteInput) session(ctx context.Context, have *bool, mirror *statetree.Value, seq *uint64, push PushFunc) error {
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}, HandshakeTimeout: 10 * time.Second}
	hdr := http.Header{}
	if r.token != "" {
		hdr.Set("Authorization", "Bearer "+r.token)
	}
	ws, resp, err := d.DialContext(ctx, r.wsURL, hdr)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("connecting to %s: %s", r.base, resp.Status)
		}
		return fmt.Errorf("connecting to %s: %w", r.base, err)
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	ws.SetReadLimit(1 << 30)
	const deadPeer = 60 * time.Second
	ws.SetReadDeadline(time.Now().Add(deadPeer))
	ws.SetPingHandler(func(data string) error {
		ws.SetReadDeadline(time.Now().Add(deadPeer))
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	req := wire.Request{Type: wire.TypeSubscribe, ID: 1, View: r.view}
	if *have {
		req.Since, req.HasSince = *seq, true
	}
	msg, err := wire.EncodeRequest(wire.JSON, &req)
	if err != nil {
		return err
	}
	if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return err
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		ws.SetReadDeadline(time.Now().Add(deadPeer))
		var m wire.Reply
		if err := wire.DecodeReply(wire.JSON, data, &m); err != nil {
			return fmt.Errorf("upstream sent a malformed message: %w", err)
		}
		switch m.Type {
		case wire.TypeError:
			return &wire.Error{Code: m.Code, Message: m.Error}
		case wire.TypeSubscribed:
			reportTrouble(ctx, "")
		case wire.TypeSnapshot:
			root, err := statetree.FromJSON(m.State)
			if err != nil {
				return fmt.Errorf("upstream snapshot at seq %d: %w", m.Seq, err)
			}
			*mirror, *seq, *have = root, m.Seq, true
			reportTrouble(ctx, "")
			push(m.Seq, nil, root, true)
		case wire.TypePatch:
			if !*have || m.Seq <= *seq {
				continue
			}
			var ops []statetree.Op
			if err := json.Unmarshal(m.Ops, &ops); err != nil {
				return fmt.Errorf("upstream patch at seq %d: %w", m.Seq, err)
			}
			root, err := statetree.Apply(*mirror, ops)
			if err != nil {
				// The mirror diverged (it should not): start over with a
				// fresh snapshot.
				*have = false
				return fmt.Errorf("upstream patch at seq %d does not apply: %w", m.Seq, err)
			}
			*mirror, *seq = root, m.Seq
			push(m.Seq, ops, root, false)
		case wire.TypeProgress:
			if !*have || m.Seq <= *seq {
				continue
			}
			*seq = m.Seq
			push(m.Seq, nil, *mirror, false)
		}
	}
}

// StateAt implements Input: GET /v1/views/{view}/state?at=SEQ upstream.
func (r *RemoteInput) StateAt(ctx context.Context, seq uint64) (statetree.Value, error) {
	u := r.base + "/v1/views/" + url.PathEscape(r.view) + "/state?at=" + strconv.FormatUint(seq, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return statetree.Value{}, err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	cl := &http.Client{Timeout: 5 * time.Minute}
	resp, err := cl.Do(req)
	if err != nil {
		return statetree.Value{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return statetree.Value{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return statetree.Value{}, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return statetree.FromJSON(body)
}
