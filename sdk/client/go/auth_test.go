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
	srv.stop()
	if lines := logCat(t, srv.data); len(lines) != 1 || lines[0].Type != "todo/add" {
		t.Fatalf("log: %+v", lines)
	}
}
