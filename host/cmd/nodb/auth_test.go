package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
	client "github.com/nodb-dev/nodb/sdk/client/go"
)

// trapWasm is a tiny reducer fixture: it accepts every event and changes
// nothing (it traps only at seq 1000).
var trapWasm, _ = filepath.Abs("../../../plugins/testdata/trap1000.wasm")

// newToken runs `nodb token create` and returns the secret it printed.
func newToken(t *testing.T, file, name string, scopes ...string) string {
	t.Helper()
	args := []string{"token", "create", "--tokens", file, "--name", name}
	for _, s := range scopes {
		args = append(args, "--scope", s)
	}
	out, errOut, code := run(t, args...)
	secret := strings.TrimSpace(out)
	if code != 0 || strings.Count(secret, "\n") != 0 || !strings.HasPrefix(secret, "nodb_") {
		t.Fatalf("nodb token create: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "shown only now") || strings.Contains(errOut, secret) {
		t.Fatalf("token create's stderr: %s", errOut)
	}
	return secret
}

func port(t *testing.T) string {
	_, p, _ := net.SplitHostPort(freeAddr(t))
	return p
}

func TestServeRefusesOpenNonLoopbackAddress(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, addr := range []string{"0.0.0.0:" + port(t), ":" + port(t), "[::]:" + port(t)} {
		_, errOut, code := run(t, "serve", "--data", data, "--addr", addr)
		if code == 0 || !strings.Contains(errOut, "refusing to listen on "+addr+" without --tokens") ||
			!strings.Contains(errOut, "nodb token create") || !strings.Contains(errOut, "--insecure") {
			t.Fatalf("serve --addr %s without tokens: exit %d\n%s", addr, code, errOut)
		}
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("a refused serve created its data directory")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", filepath.Join(dir, "c.pem")}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", filepath.Join(dir, "k.pem")}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", filepath.Join(dir, "c.pem"), "--tls-key", filepath.Join(dir, "k.pem")}, "no such file"},
		{[]string{"--tokens", filepath.Join(dir, "none.json")}, "does not exist; create it with nodb token create"},
	} {
		_, errOut, code := run(t, append([]string{"serve", "--data", data, "--addr", freeAddr(t)}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Fatalf("serve %v: exit %d, want %q\n%s", c.args, code, c.want, errOut)
		}
	}
}

func TestServeOnAllInterfaces(t *testing.T) {
	// --insecure: starts, and says it is open.
	p := startServe(t, t.TempDir(), "0.0.0.0:"+port(t), "--insecure")
	if !strings.Contains(p.stderr.String(), "open to anyone who can reach it") {
		t.Fatalf("no warning about an open host:\n%s", p.stderr)
	}
	if err := p.term(); err != nil {
		t.Fatal(err)
	}
	// Loopback without tokens: starts, and warns too.
	p = startServe(t, t.TempDir(), freeAddr(t))
	if !strings.Contains(p.stderr.String(), "open to anyone who can reach it") || !strings.Contains(p.stderr.String(), "loopback only") {
		t.Fatalf("no warning about open mode:\n%s", p.stderr)
	}
	p.term()
	// --tokens: starts, and wants tokens.
	file := filepath.Join(t.TempDir(), "tokens.json")
	secret := newToken(t, file, "ops", "admin")
	addr := "0.0.0.0:" + port(t)
	p = startServe(t, t.TempDir(), addr, "--tokens", file)
	if strings.Contains(p.stderr.String(), "open to anyone") || !strings.Contains(p.stderr.String(), "clear text") {
		t.Fatalf("serve --tokens output:\n%s", p.stderr)
	}
	if _, errOut, code := run(t, "plugins", "--addr", addr); code == 0 || !strings.Contains(errOut, "requires a token") {
		t.Fatalf("plugins without a token: exit %d %s", code, errOut)
	}
	if _, errOut, code := run(t, "plugins", "--addr", addr, "--token", secret); code != 0 {
		t.Fatalf("plugins with a token: exit %d %s", code, errOut)
	}
}

// TestCLITokens runs a host with tokens and every client command with and
// without the scopes it needs.
func TestCLITokens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	ops := newToken(t, file, "ops", "admin")
	bot := newToken(t, file, "stats-bot", "read:todos", "deploy:cascade")
	app := newToken(t, file, "todo-app", "publish:todo/", "read:todos")
	out, _, code := run(t, "token", "list", "--tokens", file)
	if code != 0 || !strings.Contains(out, "stats-bot") || !strings.Contains(out, "read:todos deploy:cascade") || strings.Contains(out, bot[len(bot)-20:]) {
		t.Fatalf("token list: %s", out)
	}
	addr := freeAddr(t)
	p := startServe(t, t.TempDir(), addr, "--tokens", file, "--plugin", "todos="+trapWasm, "--plugin", "kv="+trapWasm)

	type cli struct {
		env      []string
		args     []string
		wantCode int
		want     string // in stdout+stderr
	}
	a := []string{"--addr", addr}
	cases := []cli{
		{nil, append([]string{"state", "todos"}, a...), 1, "requires a token"},
		{[]string{"NODB_TOKEN=nodb_0000_nope"}, append([]string{"state", "todos"}, a...), 1, "unknown or revoked"},
		{[]string{"NODB_TOKEN=" + bot}, append([]string{"state", "todos"}, a...), 0, "{}"},
		{nil, append([]string{"state", "todos", "--token", bot}, a...), 0, "{}"},
		{nil, append([]string{"state", "kv", "--token", bot}, a...), 1, `token "stats-bot" may not read view "kv": it needs scope read:kv`},
		{nil, append([]string{"publish", "--token", bot, "--producer", "bot", "--pseq", "1", "--type", "todo/add"}, a...), 1, `may not publish events of type "todo/add": it needs scope publish:todo/`},
		{nil, append([]string{"publish", "--token", app, "--producer", "app", "--pseq", "1", "--type", "todo/add"}, a...), 0, `"seq":1`},
		{nil, append([]string{"publish", "--token", app, "--producer", "app", "--pseq", "2", "--type", "kv/set"}, a...), 1, "forbidden"},
		{nil, append([]string{"watch", "--token", bot, "kv"}, a...), 1, "it needs scope read:kv"},
		{nil, append([]string{"deploy", "--token", bot, "--name", "todos", "--quiet", trapWasm}, a...), 1, `may not upload a plugin of kind "reducer"`},
		{nil, append([]string{"plugins", "--token", bot}, a...), 0, "SHA256"},
		{nil, append([]string{"plugins", "--token", app}, a...), 1, "deploy:cascade"},
		{nil, append([]string{"rollback", "--token", bot, "--view", "todos", "--quiet"}, a...), 1, "not a cascade view"},
		{nil, append([]string{"replay", "--token", bot, "--view", "todos", "--dry-run", "--quiet", trapWasm}, a...), 1, "needs scope admin"},
		{nil, append([]string{"plugins", "--token", ops, "--json"}, a...), 0, `"todos"`},
		{nil, append([]string{"deploy", "--token", ops, "--name", "todos", "--policy", "always", "--quiet", trapWasm}, a...), 0, `"outcome": "swapped"`},
	}
	for _, c := range cases {
		out, errOut, code := runWith(t, c.env, c.args...)
		if code != c.wantCode || !strings.Contains(out+errOut, c.want) {
			t.Errorf("nodb %s (env %v): exit %d, want %d and %q\nstdout %s\nstderr %s", strings.Join(c.args, " "), c.env, code, c.wantCode, c.want, out, errOut)
		}
	}
	if !strings.Contains(p.stderr.String(), "request refused") {
		t.Errorf("refusals are not logged:\n%s", p.stderr)
	}

	// Revoking takes effect on the running host within a second or so.
	if _, errOut, code := run(t, "token", "revoke", "--tokens", file, "stats-bot"); code != 0 || !strings.Contains(errOut, `revoked token "stats-bot"`) {
		t.Fatalf("token revoke: exit %d %s", code, errOut)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, errOut, code := run(t, "state", "todos", "--token", bot, "--addr", addr)
		if code != 0 && strings.Contains(errOut, "unknown or revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked token still works after 5s: exit %d %s", code, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, errOut, code := run(t, "state", "todos", "--token", app, "--addr", addr); code != 0 {
		t.Fatalf("another token stopped working: %s", errOut)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// (its own CA) and its key as PEM files in dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nodb test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startServeTLS starts `nodb serve` with TLS and waits until /readyz
// answers over HTTPS.
func startServeTLS(t *testing.T, dir, addr string, hc *http.Client, args ...string) *proc {
	t.Helper()
	return startServeOn(t, hc, "https://"+addr+"/readyz", dir, addr, args...)
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	file := filepath.Join(dir, "tokens.json")
	ops := newToken(t, file, "ops", "admin")
	app := newToken(t, file, "todo-app", "publish:todo/", "read:todos")
	addr := freeAddr(t)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p := startServeTLS(t, filepath.Join(dir, "data"), addr, hc, "--tokens", file, "--tls-cert", certFile, "--tls-key", keyFile, "--plugin", "todos="+trapWasm)
	if !strings.Contains(p.stderr.String(), "https://"+addr) {
		t.Fatalf("serve does not say it serves https:\n%s", p.stderr)
	}
	base := "https://" + addr

	// The CLI over https and wss, trusting the CA with --ca.
	env := []string{"NODB_TOKEN=" + app}
	if out, errOut, code := runWith(t, env, "publish", "--addr", base, "--ca", certFile, "--producer", "tls", "--pseq", "1", "--type", "todo/add"); code != 0 || !strings.Contains(out, `"seq":1`) {
		t.Fatalf("publish over wss: exit %d %s %s", code, out, errOut)
	}
	if out, errOut, code := runWith(t, env, "state", "todos", "--addr", base, "--ca", certFile); code != 0 || strings.TrimSpace(out) != "{}" {
		t.Fatalf("state over https: exit %d %s %s", code, out, errOut)
	}
	// Without trusting the CA: a certificate error.
	if _, errOut, code := runWith(t, env, "state", "todos", "--addr", base); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("state without --ca: exit %d %s", code, errOut)
	}
	// SSL_CERT_FILE works too (the Go runtime reads it on Linux).
	if out, errOut, code := runWith(t, append(env, "SSL_CERT_FILE="+certFile), "state", "todos", "--addr", base); code != 0 || strings.TrimSpace(out) != "{}" {
		t.Fatalf("state with SSL_CERT_FILE: exit %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run(t, "plugins", "--addr", base, "--ca", certFile, "--token", ops); code != 0 || !strings.Contains(out, "todos") {
		t.Fatalf("plugins over https: exit %d %s %s", code, out, errOut)
	}

	// The Go client over wss with a token and the CA.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "wss://"+addr+"/v1/ws", client.WithToken(app), client.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ack, err := c.Publish(ctx, "todo/add", map[string]string{"id": "b"}); err != nil || ack.Seq != 2 {
		t.Fatalf("Go client over wss: %+v %v", ack, err)
	}

	// A browser-style WebSocket over wss with ?access_token=.
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}, TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("wss://"+addr+"/v1/ws?access_token="+app, nil)
	if err != nil {
		t.Fatalf("wss with access_token: %v %v", err, resp)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hello wire.Reply
	if _, data, err := ws.ReadMessage(); err != nil || json.Unmarshal(data, &hello) != nil || hello.Type != wire.TypeHello || hello.Head != 2 {
		t.Fatalf("hello over wss: %s %v", data, err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","id":1,"view":"todos"}`))
	var snap wire.Reply
	if _, data, err := ws.ReadMessage(); err != nil || json.Unmarshal(data, &snap) != nil || snap.Type != wire.TypeSnapshot {
		t.Fatalf("subscribe over wss: %s %v", data, err)
	}
	// No token over wss: 401 before the upgrade.
	if _, resp, err := d.Dial("wss://"+addr+"/v1/ws", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("wss without a token: %v %v", err, resp)
	}
}
