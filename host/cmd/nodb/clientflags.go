package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/abi/wire"
)

// tokenEnv is the environment variable that supplies --token's default.
const tokenEnv = "NODB_TOKEN"

// clientOptions are the flags of every command that talks to a host:
// --addr, --token (default $NODB_TOKEN) and --ca.
type clientOptions struct {
	addr  string
	token string
	ca    string

	tls    *tls.Config // built on first use from --ca
	client *http.Client
}

func (c *clientOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.addr, "addr", "http://127.0.0.1:7070", "nodb host URL (http, https, ws or wss)")
	f.StringVar(&c.token, "token", "", "bearer token for a host started with --tokens (default $"+tokenEnv+"; prefer the variable: flags show up in ps)")
	f.StringVar(&c.ca, "ca", "", "PEM file of a CA to trust for https/wss, besides the system's (SSL_CERT_FILE replaces the system's)")
}

// bearer returns the token to send: --token, else $NODB_TOKEN.
func (c *clientOptions) bearer() string {
	if c.token != "" {
		return c.token
	}
	return strings.TrimSpace(os.Getenv(tokenEnv))
}

func (c *clientOptions) tlsConfig() (*tls.Config, error) {
	if c.tls != nil || c.ca == "" {
		return c.tls, nil
	}
	pem, err := os.ReadFile(c.ca)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate found in the file", c.ca)
	}
	c.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return c.tls, nil
}

// httpClient returns the HTTP client for the host (trusting --ca).
func (c *clientOptions) httpClient() (*http.Client, error) {
	if c.client != nil {
		return c.client, nil
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc == nil {
		c.client = http.DefaultClient
		return c.client, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	c.client = &http.Client{Transport: tr}
	return c.client, nil
}

// base returns the host's HTTP base URL (no trailing slash).
func (c *clientOptions) base() (string, error) { return httpURL(c.addr) }

// do sends a request to the host with the bearer token and returns the
// response when it is 2xx; otherwise the host's error (a *wire.Error when
// the body is one).
func (c *clientOptions) do(ctx context.Context, method, u string, body io.Reader, hdr map[string]string) (*http.Response, error) {
	hc, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if tok := c.bearer(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is nodb serve running at %s?)", err, c.addr)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

// dialWS opens the host's WebSocket (subprotocol nodb.v1.json) with the
// bearer token.
func (c *clientOptions) dialWS(ctx context.Context) (*websocket.Conn, error) {
	u, err := wsURL(c.addr)
	if err != nil {
		return nil, err
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}, HandshakeTimeout: 10 * time.Second, TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	hdr := http.Header{}
	if tok := c.bearer(); tok != "" {
		hdr.Set("Authorization", "Bearer "+tok)
	}
	ws, resp, err := d.DialContext(ctx, u, hdr)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			var e wire.Error
			if json.Unmarshal(body, &e) == nil && e.Message != "" {
				return nil, fmt.Errorf("connecting to %s: %s: %w", u, resp.Status, &e)
			}
			return nil, fmt.Errorf("connecting to %s: %s", u, resp.Status)
		}
		return nil, fmt.Errorf("connecting to %s: %w (is nodb serve running?)", u, err)
	}
	return ws, nil
}
