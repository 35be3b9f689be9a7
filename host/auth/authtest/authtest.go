// Package authtest holds what the tests of the host's HTTP APIs share to
// check authorisation: a request with a bearer token and the check of a
// refusal.
package authtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/auth"
)

// Grant is one token of a token file made by Tokens.
type Grant struct {
	Name   string
	Scopes []string
	Limits auth.Limits
}

// Tokens creates a token file in a temporary directory with one token per
// grant and returns its Authenticator, its path and the secrets by name.
func Tokens(t testing.TB, grants ...Grant) (*auth.Authenticator, string, map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.json")
	secrets := map[string]string{}
	err := auth.Update(path, func(f *auth.File) error {
		for _, g := range grants {
			tok, secret, err := auth.NewToken(g.Name, g.Scopes, g.Limits)
			if err != nil {
				return err
			}
			secrets[g.Name] = secret
			if err := f.Add(tok); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, path, secrets
}

// Result is an HTTP answer: its status, headers, body, and the body decoded
// as a wire.Error (zero if it is not one).
type Result struct {
	Status int
	Header http.Header
	Body   string
	Err    wire.Error
}

// Do sends method url with body and the bearer token (none if empty) and
// the extra header name/value pairs, and returns the answer. A transport
// error fails t.
func Do(t testing.TB, method, url, token string, body []byte, hdr ...string) Result {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := Result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	json.Unmarshal(b, &r.Err)
	return r
}

// Refused checks that r is a 401 or 403 (status) with the matching wire
// error code and a message containing contains.
func Refused(t testing.TB, what string, r Result, status int, contains string) {
	t.Helper()
	code := map[int]string{401: wire.CodeUnauthorized, 403: wire.CodeForbidden}[status]
	if r.Status != status || r.Err.Code != code || !strings.Contains(r.Err.Message, contains) {
		t.Errorf("%s: got %d %s, want %d %s containing %q", what, r.Status, r.Body, status, code, contains)
	}
}
