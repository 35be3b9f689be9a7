package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/host/auth"
)

// securityOptions are nodb serve's --tokens, --insecure, --tls-cert and
// --tls-key. check runs before anything else (cobra PreRunE) so a refused
// configuration changes nothing on disk.
type securityOptions struct {
	tokens   string
	insecure bool
	tlsCert  string
	tlsKey   string

	auth *auth.Authenticator // nil: open mode
	cert *tls.Certificate
}

// addFlags registers the flags on cmd and makes cmd check them (with the
// listen address *addr) before it runs.
func (s *securityOptions) addFlags(cmd *cobra.Command, addr *string) {
	f := cmd.Flags()
	f.StringVar(&s.tokens, "tokens", "", "token file: every API request needs a bearer token with the right scopes (create tokens with nodb token create)")
	f.BoolVar(&s.insecure, "insecure", false, "allow a non-loopback --addr without --tokens: anyone who can reach the host may do anything")
	f.StringVar(&s.tlsCert, "tls-cert", "", "serve HTTPS and WSS with this PEM certificate (chain); needs --tls-key")
	f.StringVar(&s.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(cmd, args); err != nil {
				return err
			}
		}
		return s.check(*addr)
	}
}

// check validates the flags, loads the token file and the certificate.
func (s *securityOptions) check(addr string) error {
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together: give both (the certificate and its private key, PEM) or neither")
	}
	loop, err := isLoopback(addr)
	if err != nil {
		return err
	}
	if s.tokens == "" && !loop && !s.insecure {
		return fmt.Errorf("refusing to listen on %s without --tokens: anyone who can reach it could publish, read and deploy anything. "+
			"Create a token file (nodb token create --tokens tokens.json --name admin --scope admin) and pass --tokens tokens.json, "+
			"or pass --insecure if every client that can reach this address is trusted", addr)
	}
	if s.tokens != "" {
		if s.auth, err = auth.Load(s.tokens, nil); err != nil {
			return fmt.Errorf("--tokens: %w", err)
		}
	}
	if s.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", s.tlsCert, s.tlsKey, err)
		}
		s.cert = &cert
	}
	return nil
}

// wrap adds TLS to the listener l when configured and logs what protects
// the host.
func (s *securityOptions) wrap(l net.Listener, logger hclog.Logger) net.Listener {
	loop, _ := isLoopback(l.Addr().String())
	scheme := "http"
	if s.cert != nil {
		scheme = "https"
		l = tls.NewListener(l, &tls.Config{
			Certificates: []tls.Certificate{*s.cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"}, // WebSocket upgrades need HTTP/1.1
		})
	}
	switch {
	case s.auth == nil && loop:
		logger.Warn("no --tokens: this host is open to anyone who can reach it (every client may publish, read and deploy anything); it listens on loopback only. Create tokens with nodb token create and pass --tokens FILE", "addr", l.Addr().String())
	case s.auth == nil:
		logger.Warn("--insecure: no --tokens on a non-loopback address: this host is open to anyone who can reach it (every client may publish, read and deploy anything)", "addr", l.Addr().String())
	default:
		s.auth.SetLogger(logger.Named("auth"))
		set := s.auth.Tokens()
		logger.Info("tokens required", "file", s.tokens, "tokens", set.Len())
		if set.Len() == 0 {
			logger.Warn("the token file holds no tokens: every API request will be refused until one is created with nodb token create", "file", s.tokens)
		}
		if s.insecure {
			logger.Info("--insecure has no effect with --tokens")
		}
		if s.cert == nil && !loop {
			logger.Warn("tokens travel in clear text: serve TLS with --tls-cert/--tls-key, or put a TLS-terminating proxy in front", "addr", l.Addr().String())
		}
	}
	logger.Info("serving", "url", scheme+"://"+l.Addr().String())
	return l
}

// isLoopback reports whether a listen address (HOST:PORT) is on loopback
// only: 127.0.0.0/8, ::1 or localhost. An empty host (every interface) and
// other names are not.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("--addr %q: %v; want HOST:PORT, e.g. 127.0.0.1:7070", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
