package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
)

func TestEncodeRoundTrip(t *testing.T) {
	for _, f := range []wire.Format{wire.JSON, wire.CBOR} {
		payload := []byte(`{"a":[1,2.5,"x\"y"],"b":null}`)
		if f == wire.CBOR {
			var err error
			if payload, err = wire.JSONToCBOR(payload); err != nil {
				t.Fatal(err)
			}
		}
		var b []byte
		if f == wire.CBOR {
			b = appendPublishCBOR(nil, 42, `pro"d\ucer`, 7, "todo/add", payload)
		} else {
			b = appendPublishJSON(nil, 42, `pro"d\ucer`, 7, "todo/add", payload)
		}
		var r wire.Request
		if err := wire.DecodeRequest(f, b, &r); err != nil {
			t.Fatalf("%v: %v\n%q", f, err, b)
		}
		if r.Type != wire.TypePublish || r.ID != 42 || r.Event.Producer != `pro"d\ucer` || r.Event.PSeq != 7 || r.Event.Type != "todo/add" {
			t.Fatalf("%v: decoded %+v", f, r)
		}
		var got, want any
		json.Unmarshal(r.Event.Payload, &got)
		json.Unmarshal([]byte(`{"a":[1,2.5,"x\"y"],"b":null}`), &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%v: payload %s", f, r.Event.Payload)
		}
	}
}

func TestParseAckJSON(t *testing.T) {
	b := wire.AppendAck(wire.JSON, nil, 12, wire.Ack{Seq: 99})
	id, seq, dup, ok := parseAckJSON(b)
	if !ok || id != 12 || seq != 99 || dup {
		t.Fatalf("%s: %d %d %v %v", b, id, seq, dup, ok)
	}
	b = wire.AppendAck(wire.JSON, nil, wire.MaxSafeInt, wire.Ack{Seq: 1, Duplicate: true})
	id, seq, dup, ok = parseAckJSON(b)
	if !ok || id != wire.MaxSafeInt || seq != 1 || !dup {
		t.Fatalf("%s: %d %d %v %v", b, id, seq, dup, ok)
	}
	for _, s := range []string{
		`{"type":"ack","id":1,"seq":2}`,
		`{"type":"ack","id":01,"seq":2,"duplicate":false}`,
		`{"type":"ack","id":99999999999999999,"seq":2,"duplicate":false}`,
		`{"type":"ack","id":1,"seq":2,"duplicate":false} `,
		`{"type":"error","id":1}`,
	} {
		if _, _, _, ok := parseAckJSON([]byte(s)); ok {
			t.Errorf("%s parsed", s)
		}
	}
}

func dialFake(t *testing.T, h *fakeHost, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts = append([]Option{WithBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	c, err := Dial(ctx, h.url(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPublishBasic(t *testing.T) {
	for _, f := range []wire.Format{wire.JSON, wire.CBOR} {
		t.Run(f.String(), func(t *testing.T) {
			h := newFakeHost(t)
			c := dialFake(t, h, WithFormat(f), WithProducer("p1"))
			ctx := context.Background()
			for i := 1; i <= 3; i++ {
				ack, err := c.Publish(ctx, "t", map[string]int{"i": i})
				if err != nil || ack.Seq != uint64(i) || ack.Duplicate {
					t.Fatalf("publish %d: %+v %v", i, ack, err)
				}
			}
			if _, err := c.Publish(ctx, "t", json.RawMessage(`{"raw":true}`)); err != nil {
				t.Fatal(err)
			}
			if c.Hello().Server != "fake" || c.NextPSeq() != 5 {
				t.Fatalf("hello %+v next %d", c.Hello(), c.NextPSeq())
			}
			// A second client with the same producer restarting at pseq 2
			// re-sends: duplicate with the original seq.
			c2 := dialFake(t, h, WithFormat(f), WithProducer("p1"), WithStartPSeq(2))
			ack, err := c2.Publish(ctx, "t", nil)
			if err != nil || !ack.Duplicate || ack.Seq != 2 {
				t.Fatalf("re-send: %+v %v", ack, err)
			}
			// Skipping ahead is a pseq_gap, returned to the caller.
			c3 := dialFake(t, h, WithFormat(f), WithProducer("p1"), WithStartPSeq(9))
			_, err = c3.Publish(ctx, "t", nil)
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != wire.CodePSeqGap || we.ExpectedPSeq != 5 {
				t.Fatalf("gap: %v", err)
			}
		})
	}
}

func TestClientSideValidation(t *testing.T) {
	h := newFakeHost(t)
	c := dialFake(t, h)
	ctx := context.Background()
	for _, tc := range []struct {
		typ     string
		payload any
	}{
		{"", nil},
		{"a\nb", nil},
		{"t", json.RawMessage(`{bad`)},
		{"t", []byte(`nope`)},
		{"t", func() {}},
		{"t", json.RawMessage(make([]byte, wire.DefaultMaxFrame))},
	} {
		if _, err := c.Publish(ctx, tc.typ, tc.payload); err == nil {
			t.Errorf("publish %q %T: no error", tc.typ, tc.payload)
		}
	}
	// None of them used a pseq.
	if c.NextPSeq() != 1 {
		t.Fatalf("next pseq %d", c.NextPSeq())
	}
	if _, err := c.Publish(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
}

// TestEscapedNamesCountAgainstTheFrameLimit: a producer id or type with
// characters JSON escapes (a backslash, a quote) is longer on the wire than
// in memory. An event that fit the client's estimate but not the host's
// frame limit used to make the host close the connection (1009) on every
// attempt: the client re-sent it forever and nothing after it got through.
// It is refused at once with too_large instead, and later events go on.
func TestEscapedNamesCountAgainstTheFrameLimit(t *testing.T) {
	h := newFakeHost(t)
	producer := strings.Repeat(`\`, 100) // 100 backslashes: 200 bytes on the wire
	c := dialFake(t, h, WithProducer(producer))
	typ := strings.Repeat(`"`, 100)
	// The largest string payload the client accepted for these names.
	payload := json.RawMessage(`"` + strings.Repeat("x", wire.DefaultMaxFrame-len(producer)-len(typ)-128-2) + `"`)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := c.Publish(ctx, typ, payload)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeTooLarge {
		t.Fatalf("publish of a frame over the host's limit: %v, want a too_large error", err)
	}
	if _, err := c.Publish(ctx, typ, 1); err != nil {
		t.Fatalf("the next publish: %v", err)
	}
	if n := h.check(t); n != 1 {
		t.Fatalf("the host holds %d events, want 1", n)
	}
}

// publishMany runs g goroutines publishing n events each and returns the
// acks.
func publishMany(t *testing.T, c *Client, g, n int, timeout time.Duration) []wire.Ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	acks := make([]wire.Ack, g*n)
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < n; j++ {
				ack, err := c.Publish(ctx, "bench/x", map[string]int{"g": i, "j": j})
				if err != nil {
					errs <- fmt.Errorf("goroutine %d event %d: %w", i, j, err)
					return
				}
				acks[i*n+j] = ack
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return acks
}

func checkUniqueContiguous(t *testing.T, acks []wire.Ack, allowDup bool) {
	t.Helper()
	seen := make(map[uint64]bool, len(acks))
	for _, a := range acks {
		if seen[a.Seq] {
			t.Fatalf("seq %d acked twice", a.Seq)
		}
		if a.Duplicate && !allowDup {
			t.Fatalf("unexpected duplicate ack %+v", a)
		}
		seen[a.Seq] = true
	}
	for s := uint64(1); s <= uint64(len(acks)); s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing among %d acks", s, len(acks))
		}
	}
}

func TestPipelinedFake(t *testing.T) {
	h := newFakeHost(t)
	c := dialFake(t, h)
	acks := publishMany(t, c, 16, 300, 20*time.Second)
	checkUniqueContiguous(t, acks, false)
	if n := h.check(t); n != len(acks) {
		t.Fatalf("log has %d events, want %d", n, len(acks))
	}
}

func TestReconnectResendsFake(t *testing.T) {
	for _, f := range []wire.Format{wire.JSON, wire.CBOR} {
		t.Run(f.String(), func(t *testing.T) {
			h := newFakeHost(t)
			h.dropAfter = 37 // every connection dies after storing its 37th event, unacked
			c := dialFake(t, h, WithFormat(f))
			acks := publishMany(t, c, 8, 200, 30*time.Second)
			// Re-sent events come back as duplicates carrying their original seq.
			checkUniqueContiguous(t, acks, true)
			if n := h.check(t); n != len(acks) {
				t.Fatalf("log has %d events, want %d", n, len(acks))
			}
			st := c.Stats()
			if st.Connects < 10 || st.Resent == 0 || st.InFlight != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestUnavailableRetried(t *testing.T) {
	h := newFakeHost(t)
	h.unavailable = 5
	c := dialFake(t, h)
	acks := publishMany(t, c, 4, 50, 20*time.Second)
	checkUniqueContiguous(t, acks, true)
	if n := h.check(t); n != len(acks) {
		t.Fatalf("log has %d events, want %d", n, len(acks))
	}
}

func TestContextAndClose(t *testing.T) {
	h := newFakeHost(t)
	h.silent = true
	c := dialFake(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Publish(ctx, "t", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline, got %v", err)
	}
	f := c.PublishAsync(context.Background(), "t", nil)
	if f.PSeq() != 2 {
		t.Fatalf("pseq %d", f.PSeq())
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer fcancel()
	if err := c.Flush(fctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush: %v", err)
	}
	c.Close()
	if _, err := f.Result(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if _, err := c.Publish(context.Background(), "t", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
}

func TestWithdrawUnsent(t *testing.T) {
	h := newFakeHost(t)
	c := dialFake(t, h, WithMaxInFlight(1))
	h.mu.Lock()
	h.silent = true
	h.mu.Unlock()
	first := c.PublishAsync(context.Background(), "t", nil)
	// The in-flight bound is reached: this one waits for room and gives up
	// without taking a pseq.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Publish(ctx, "t", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if c.NextPSeq() != 2 || first.PSeq() != 1 {
		t.Fatalf("next pseq %d", c.NextPSeq())
	}
}
