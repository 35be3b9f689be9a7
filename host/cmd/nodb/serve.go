package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/chronicler"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
	"github.com/nodb-dev/nodb/host/server"
	jsclient "github.com/nodb-dev/nodb/sdk/client/js"
)

type serveOptions struct {
	data         string
	addr         string
	sec          securityOptions // --tokens, --insecure, --tls-cert, --tls-key (security.go)
	maxFrame     int
	logLevel     string
	logJSON      bool
	allowOrigins []string
	cpuProfile   string
	plugins      []string
	web          string
	snapEvery    uint64
	upstreams    []string
}

func serveCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the nodb host",
		Long: `Run the nodb host: accept events over WebSocket (GET /v1/ws) and HTTP
(POST /v1/events), store them durably in --data, and serve the operational
endpoints /livez, /readyz and /metrics. SIGINT or SIGTERM shut it down
gracefully: in-flight publishes are acked, then WebSockets close with 1001;
activations and dry runs in progress are abandoned (the views keep their
versions).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "./data", "data directory (created if missing)")
	f.StringVar(&o.addr, "addr", "127.0.0.1:7070", "address to listen on")
	o.sec.addFlags(cmd, &o.addr)
	f.IntVar(&o.maxFrame, "max-frame", wire.DefaultMaxFrame, "largest WebSocket frame or HTTP body accepted, in bytes")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	f.BoolVar(&o.logJSON, "log-json", false, "write logs as JSON lines")
	f.StringSliceVar(&o.allowOrigins, "allow-origin", nil, "browser origin allowed to open WebSockets and send API requests that change something (repeatable; * for any)")
	f.StringArrayVar(&o.plugins, "plugin", nil, "load a reducer or cascade: NAME=FILE.wasm builds view NAME with the plugin (repeatable)")
	f.StringArrayVar(&o.upstreams, "upstream", nil, "read a cascade's input NAME from another nodb host: NAME=ws://HOST:PORT[?view=REMOTE&access_token=T] (repeatable)")
	f.StringVar(&o.web, "web", "", "serve the static files of this directory at / (the example app)")
	f.Uint64Var(&o.snapEvery, "snapshot-every", 100000, "snapshot each view after this many events")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run to this file (for performance work)")
	f.MarkHidden("cpuprofile")
	return cmd
}

func runServe(ctx context.Context, o *serveOptions) error {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "nodb",
		Level:      hclog.LevelFromString(o.logLevel),
		JSONFormat: o.logJSON,
		Output:     os.Stderr,
	})
	if o.maxFrame < 1024 {
		return fmt.Errorf("--max-frame %d is too small; use at least 1024 bytes", o.maxFrame)
	}
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := validatePlugins(o.plugins); err != nil {
		return err
	}
	srv := server.New(server.Config{
		MaxFrame:       o.maxFrame,
		AllowedOrigins: o.allowOrigins,
		Auth:           o.sec.auth,
		Version:        version,
		Logger:         logger.Named("server"),
	})
	if o.web != "" {
		if st, err := os.Stat(o.web); err != nil || !st.IsDir() {
			return fmt.Errorf("--web %s: not a directory", o.web)
		}
		srv.Handle("GET /", http.FileServer(http.Dir(o.web)))
	}
	srv.Handle("GET /nodb-client/", http.StripPrefix("/nodb-client/", http.FileServer(http.FS(jsclient.Files))))
	l, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.addr, err)
	}
	l = o.sec.wrap(l, logger) // TLS; logs what protects the host (security.go)
	logger.Info("listening", "addr", l.Addr().String(), "data", o.data)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx, l) }()

	// Recover while /livez answers and /readyz says 503.
	start := time.Now()
	cfg := filelog.DefaultConfig(o.data)
	cfg.Logger = logger.Named("eventlog")
	cfg.MaxRecordSize = o.maxFrame + 4096
	rebuilt := chronicler.NewRebuilder() // the dedupe table, from the open scan itself
	cfg.OnRecord = func(seq, pseq uint64, producer []byte, t int64) error {
		rebuilt.Add(seq, pseq, producer, t) // a failure makes New read the log itself
		return nil
	}
	elog, err := filelog.Open(cfg)
	if err != nil {
		stop()
		<-serveErr
		return fmt.Errorf("opening the event log: %w", err)
	}
	chron, err := chronicler.New(ctx, elog, chronicler.Config{Logger: logger.Named("chronicler"), Metrics: srv.ChronMetrics, Rebuilt: rebuilt, MaxRecordSize: cfg.MaxRecordSize})
	if err != nil {
		elog.Close()
		stop()
		<-serveErr
		return err
	}
	views, err := startViews(ctx, o, elog, chron, srv, logger)
	if err != nil {
		chron.Close()
		elog.Close()
		stop()
		<-serveErr
		return err
	}
	// On SIGINT/SIGTERM, end the activations and dry runs in progress at
	// once: the HTTP server's shutdown waits for their requests, which
	// could otherwise replay until its timeout and then race views.stop
	// for the modules and the log.
	stopOps := context.AfterFunc(ctx, views.mgr.Shutdown)
	defer stopOps()
	srv.SetChronicler(chron)
	logger.Info("ready", "head", elog.LastSeq(), "recovery", time.Since(start).Round(time.Millisecond))

	err = <-serveErr
	views.stop()
	logger.Info("shutting down")
	chron.Close()
	if cerr := elog.Close(); cerr != nil {
		logger.Error("closing the event log", "error", cerr)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("stopped")
	return nil
}
