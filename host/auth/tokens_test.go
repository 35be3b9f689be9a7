package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
)

func TestTokenFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	admin, adminSecret, err := NewToken("ops", []string{"admin"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	bot, botSecret, err := NewToken("stats-bot", []string{"read:todos", "deploy:cascade"}, Limits{MemoryPages: 64, EventTimeoutMS: 500})
	if err != nil {
		t.Fatal(err)
	}
	// Secrets: nodb_<id>_<43 base64url chars>; the id is findable, the
	// secret is not stored, only its SHA-256.
	for _, c := range []struct {
		tok    Token
		secret string
	}{{admin, adminSecret}, {bot, botSecret}} {
		id, ok := SecretID(c.secret)
		if !ok || id != c.tok.ID {
			t.Fatalf("SecretID(%q) = %q %v, want %q", c.secret, id, ok, c.tok.ID)
		}
		if n := len(c.secret) - len(SecretPrefix+c.tok.ID+"_"); n != 43 {
			t.Fatalf("random part of %q is %d characters, want 43 (32 bytes)", c.secret, n)
		}
		sum := sha256.Sum256([]byte(c.secret))
		if c.tok.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatal("the stored hash is not the SHA-256 of the secret")
		}
	}
	if adminSecret == botSecret || admin.ID == bot.ID {
		t.Fatal("two tokens share a secret or id")
	}
	err = Update(path, func(f *File) error {
		if err := f.Add(admin); err != nil {
			return err
		}
		return f.Add(bot)
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), adminSecret) || strings.Contains(string(raw), botSecret[len(SecretPrefix)+len(bot.ID)+1:]) {
		t.Fatal("a secret is stored in the token file")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", st.Mode().Perm())
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tokens) != 2 || f.Tokens[1].Name != "stats-bot" || f.Tokens[1].Limits.MemoryPages != 64 ||
		f.Tokens[1].Limits.EventTimeoutMS != 500 || len(f.Tokens[1].Scopes) != 2 || f.Tokens[1].Created.IsZero() {
		t.Fatalf("read back %+v", f.Tokens)
	}
	// No temp files are left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("left over: %s", e.Name())
		}
	}

	set, err := NewSet(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := set.Verify(botSecret)
	if err != nil || p.Name != "stats-bot" || !p.CanRead("todos") || p.Admin() || p.Limits.MemoryPages != 64 {
		t.Fatalf("verify: %+v %v", p, err)
	}
	if p, err := set.Verify(adminSecret); err != nil || !p.Admin() {
		t.Fatalf("verify admin: %v", err)
	}
	// A wrong secret with a valid id, an unknown id, garbage: all 401.
	wrong := botSecret[:len(botSecret)-1] + string("AB"[0]^botSecret[len(botSecret)-1]&1)
	for _, s := range []string{wrong, SecretPrefix + "ffffffffffffffff_" + strings.Repeat("A", 43), "hunter2", "", "nodb__x", SecretPrefix + bot.ID + "_"} {
		_, err := set.Verify(s)
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Code != wire.CodeUnauthorized {
			t.Errorf("Verify(%q) = %v, want a 401", s, err)
		}
	}

	// Duplicates are refused; revoking by id or name removes the entry.
	if err := Update(path, func(f *File) error { return f.Add(Token{ID: "x", Name: "ops"}) }); err == nil || !strings.Contains(err.Error(), `"ops" exists already`) {
		t.Fatalf("duplicate name: %v", err)
	}
	var gone Token
	if err := Update(path, func(f *File) (err error) { gone, err = f.Remove(bot.ID); return }); err != nil || gone.Name != "stats-bot" {
		t.Fatalf("revoke: %v", err)
	}
	if err := Update(path, func(f *File) (err error) { _, err = f.Remove("ops"); return }); err != nil {
		t.Fatalf("revoke by name: %v", err)
	}
	if err := Update(path, func(f *File) (err error) { _, err = f.Remove("nobody"); return }); err == nil || !strings.Contains(err.Error(), "nodb token list") {
		t.Fatalf("revoking an unknown token: %v", err)
	}
	if f, err := ReadFile(path); err != nil || len(f.Tokens) != 0 {
		t.Fatalf("after revoking: %+v %v", f, err)
	}
}

func TestTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "nodb token create") {
		t.Fatalf("missing file: %v", err)
	}
	for content, want := range map[string]string{
		`{"tokens":[{"id":"a","name":"x","sha256":"00","scopes":["admin"]}]}`:                                                                                                                  "64 hex digits",
		`{"tokens":[{"id":"a","name":"x","sha256":"` + strings.Repeat("0", 64) + `","scopes":[]}]}`:                                                                                            "no scopes",
		`{"tokens":[{"id":"a","name":"x","sha256":"` + strings.Repeat("0", 64) + `","scopes":["superuser"]}]}`:                                                                                 `"superuser" is unknown`,
		`{"tokens":[{"id":"a","name":"x","sha256":"` + strings.Repeat("0", 64) + `","scopes":["admin"]},{"id":"a","name":"y","sha256":"` + strings.Repeat("0", 64) + `","scopes":["admin"]}]}`: "appears twice",
		`{"tokens":[], "secret":"x"}`: "unknown field",
		`not json`:                    "not valid",
	} {
		p := filepath.Join(dir, "t.json")
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", content, err, want)
		}
	}
	if _, _, err := NewToken("", []string{"admin"}, Limits{}); err == nil {
		t.Fatal("a token without a name")
	}
	if _, _, err := NewToken("x", nil, Limits{}); err == nil || !strings.Contains(err.Error(), "at least one scope") {
		t.Fatalf("a token without scopes: %v", err)
	}
	if _, _, err := NewToken("x", []string{"read"}, Limits{}); err == nil {
		t.Fatal("a bad scope")
	}
}

// TestTokenFileWithMoreAfterItIsRefused: the decoder stopped at the end of
// the first JSON value, so a token file holding another after it (a second
// version appended, the tail of a longer file written over in place) was
// read as its first part and the rest silently ignored, tokens included;
// nodb token commands then wrote that part back and dropped the rest.
func TestTokenFileWithMoreAfterItIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	tok, _, err := NewToken("ops", []string{"admin"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Update(path, func(f *File) error { return f.Add(tok) }); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range []string{`{"tokens":[]}`, `]}`, `garbage`} {
		if err := os.WriteFile(path, append(append([]byte(nil), good...), extra...), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "after") {
			t.Errorf("token file followed by %q: got %v, want an error about what follows", extra, err)
		}
		if err := Update(path, func(*File) error { return nil }); err == nil {
			t.Errorf("token file followed by %q: Update rewrote it", extra)
		}
	}
	if err := os.WriteFile(path, append(good, " \n\t\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatalf("white space after the token file: %v", err)
	}
}

// TestUpdateIsSerialised runs concurrent updates; none is lost.
func TestUpdateIsSerialised(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, _, err := NewToken("t"+string(rune('a'+i)), []string{"read:*"}, Limits{})
			if err != nil {
				t.Error(err)
				return
			}
			if err := Update(path, func(f *File) error { return f.Add(tok) }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if f, err := ReadFile(path); err != nil || len(f.Tokens) != 8 {
		t.Fatalf("%d tokens after 8 concurrent creates: %v", len(f.Tokens), err)
	}
}

// TestVerifyUsesConstantTimeCompare checks the source: the secret's hash is
// compared with crypto/subtle, and nothing in the package compares hashes
// with == or bytes.Equal.
func TestVerifyUsesConstantTimeCompare(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "tokens.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var verify *ast.FuncDecl
	for _, d := range file.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "Verify" {
			verify = fd
		}
	}
	if verify == nil {
		t.Fatal("no Verify in tokens.go")
	}
	calls := false
	ast.Inspect(verify, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "subtle" && sel.Sel.Name == "ConstantTimeCompare" {
				calls = true
			}
		}
		return true
	})
	if !calls {
		t.Fatal("Verify does not call subtle.ConstantTimeCompare")
	}
	ents, _ := filepath.Glob("*.go")
	for _, name := range ents {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					for _, side := range []ast.Expr{n.X, n.Y} {
						if s := exprText(side); strings.Contains(strings.ToLower(s), "hash") || strings.Contains(s, "sum") || strings.Contains(strings.ToLower(s), "secret") {
							t.Errorf("%s: %s compared with %s; use subtle.ConstantTimeCompare", fset.Position(n.Pos()), s, n.Op)
						}
					}
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && (x.Name == "bytes" || x.Name == "hmac") && n.Sel.Name == "Equal" {
					t.Errorf("%s: %s.Equal in the auth package; use subtle.ConstantTimeCompare", fset.Position(n.Pos()), x.Name)
				}
			}
			return true
		})
	}
}

func exprText(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprText(e.X) + "." + e.Sel.Name
	case *ast.IndexExpr:
		return exprText(e.X)
	case *ast.SliceExpr:
		return exprText(e.X)
	}
	return ""
}

func TestAuthenticator(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	tok, secret, _ := NewToken("app", []string{"publish:todo/", "read:todos"}, Limits{})
	if err := Update(path, func(f *File) error { return f.Add(tok) }); err != nil {
		t.Fatal(err)
	}
	a, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := func(target string, hdr ...string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	if p, err := a.Authenticate(req("/v1/views", "Authorization", "Bearer "+secret)); err != nil || p.Name != "app" {
		t.Fatalf("bearer: %v", err)
	}
	if p, err := a.Authenticate(req("/v1/views", "Authorization", "bearer   "+secret)); err != nil || p.Name != "app" {
		t.Fatalf("lower-case scheme: %v", err)
	}
	if p, err := a.Authenticate(req("/v1/ws?access_token="+secret, "Upgrade", "websocket", "Connection", "Upgrade")); err != nil || p.Name != "app" {
		t.Fatalf("access_token on a WebSocket: %v", err)
	}
	cases := []struct {
		r       *http.Request
		invalid bool
		want    string
	}{
		{req("/v1/views"), false, "requires a token"},
		{req("/v1/views", "Authorization", "Basic dXNlcjpwYXNz"), true, "Bearer <token>"},
		{req("/v1/views", "Authorization", "Bearer nodb_x_y"), true, "unknown or revoked"},
		{req("/v1/views?access_token=" + secret), true, "only on WebSocket handshakes"},
	}
	for _, c := range cases {
		_, err := a.Authenticate(c.r)
		var e *Error
		if !errors.As(err, &e) || e.Status != 401 || e.InvalidToken != c.invalid || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s %v: got %v, want a 401 containing %q", c.r.URL, c.r.Header, err, c.want)
		}
		w := httptest.NewRecorder()
		WriteError(w, err)
		if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") || !strings.Contains(w.Body.String(), `"code":"unauthorized"`) {
			t.Errorf("response %d %v %s", w.Code, w.Header(), w.Body)
		}
	}
	w := httptest.NewRecorder()
	p, _ := a.Authenticate(req("/", "Authorization", "Bearer "+secret))
	WriteError(w, p.CheckRead("payroll"))
	if w.Code != 403 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `scope="read:payroll"`) ||
		!strings.Contains(w.Body.String(), `{"code":"forbidden","error":"token \"app\" may not read view \"payroll\": it needs scope read:payroll"}`) {
		t.Fatalf("403 response %d %v %s", w.Code, w.Header(), w.Body)
	}

	// Open mode: everyone is admin, with or without a token.
	var open *Authenticator = OpenMode()
	if p, err := open.Authenticate(req("/metrics")); err != nil || !p.Admin() || !open.Open() {
		t.Fatalf("open mode: %v", err)
	}

	// Revoking in the file takes effect after the next check.
	if err := Update(path, func(f *File) (err error) { _, err = f.Remove("app"); return }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * ReloadCheckInterval)
	for {
		_, err := a.Authenticate(req("/", "Authorization", "Bearer "+secret))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a revoked token still works")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A broken file keeps the last good tokens.
	tok2, secret2, _ := NewToken("app2", []string{"read:*"}, Limits{})
	Update(path, func(f *File) error { return f.Add(tok2) })
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("{broken"), 0o600)
	if err := a.Reload(); err == nil {
		t.Fatal("reloading a broken file succeeded")
	}
	if _, err := a.Authenticate(req("/", "Authorization", "Bearer "+secret2)); err != nil {
		t.Fatalf("after a broken reload: %v", err)
	}
}
