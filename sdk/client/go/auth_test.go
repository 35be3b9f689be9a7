package client

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
)

// createToken runs `nodb token create` and returns the secret.
func createToken(t *testing.T, file, name string, scopes ...string) string {
	t.Helper()
	args := []string{"token", "create", "--tokens", file, "--name", name}
	for _, s := range scopes {
		args = append(args, "--scope", s)
	}
	out, err := exec.Command(nodbBin, args...).Output()
	if err != nil {
		t.Fatalf("nodb token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestTokenOption(t *testing.T) {
	needServer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens.json")
	app := createToken(t, file, "todo-app", "publish:todo/")
	srv := startServer(t, filepath.Join(dir, "data"), freeAddr(t), "--tokens", file)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Without a token, and with a wrong one, the handshake is refused with
	// the host's explanation.
	for _, opts := range [][]Option{nil, {WithToken(app + "x")}} {
		_, err := Dial(ctx, srv.url(), opts...)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeUnauthorized {
			t.Fatalf("dial %d options: got %v, want a *wire.Error with code unauthorized", len(opts), err)
		}
	}

	c, err := Dial(ctx, srv.url(), WithToken(app), WithProducer("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ack, err := c.Publish(ctx, "todo/add", map[string]string{"id": "a"})
	if err != nil || ack.Seq != 1 {
		t.Fatalf("allowed publish: %+v %v", ack, err)
	}
	_, err = c.Publish(ctx, "chat/post", "hi")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeForbidden || !strings.Contains(we.Message, `may not publish events of type "chat/post"`) {
		t.Fatalf("forbidden publish: %v", err)
	}
	// The refused event's pseq is not stored: the events after it, already
	// in flight, are renumbered and stored once, in order.
	var futs []*Future
	for i := 0; i < 20; i++ {
		typ := "todo/add"
		if i == 5 {
			typ = "chat/post"
		}
		futs = append(futs, c.PublishAsync(ctx, typ, map[string]int{"n": i}))
	}
	for i, f := range futs {
		_, err := f.Wait(ctx)
		if (i == 5) != (err != nil) {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if ack, err := c.Publish(ctx, "todo/add", map[string]string{"id": "z"}); err != nil || ack.Duplicate {
		t.Fatalf("after the renumbering: %+v %v", ack, err)
	}
	// Renumbering while the writer is still sending the events it renumbers
	// (long bursts, the refused one early): every pseq a Future reports is
	// the stored one, and the log below stays gapless. Under -race this
	// also checks that the writer reads pseqs only under the lock.
	const rounds, burst = 10, 200
	for r := 0; r < rounds; r++ {
		futs = futs[:0]
		for i := 0; i < burst; i++ {
			typ := "todo/add"
			if i == 2 {
				typ = "chat/post"
			}
			f := c.PublishAsync(ctx, typ, map[string]int{"r": r, "n": i})
			_ = f.PSeq() // read while renumbering may happen
			futs = append(futs, f)
		}
		for i, f := range futs {
			ack, err := f.Wait(ctx)
			if (i == 2) != (err != nil) {
				t.Fatalf("round %d event %d: %v", r, i, err)
			}
			if err == nil && f.PSeq() == 0 {
				t.Fatalf("round %d event %d: acked (seq %d) with pseq 0", r, i, ack.Seq)
			}
		}
	}
	srv.stop()
	lines := logCat(t, srv.data)
	if want := 1 + 19 + 1 + rounds*(burst-1); len(lines) != want {
		t.Fatalf("log holds %d events, want %d", len(lines), want)
	}
	for i, l := range lines {
		if l.Type != "todo/add" || l.PSeq != uint64(i+1) {
			t.Fatalf("log line %d: %+v (want todo/add with pseq %d)", i, l, i+1)
		}
	}
}
