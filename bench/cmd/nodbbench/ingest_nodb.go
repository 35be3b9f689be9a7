package main

import (
	"context"
	"encoding/json"
	"os"

	client "github.com/nodb-dev/nodb/sdk/client/go"
)

// nodb under ingest: a `nodb serve` child process; each producer is one
// client.Client (one WebSocket, one producer id).

type nodbIngest struct {
	srv *nodbServer
}

func startNodbIngest(ctx context.Context, env *Env) (ingestTarget, error) {
	var extra []string
	if p := os.Getenv("NODB_BENCH_CPUPROFILE"); p != "" {
		extra = append(extra, "--cpuprofile", p) // profile the server during the run
	}
	srv, err := env.startNodb(ctx, extra...)
	if err != nil {
		return nil, err
	}
	return &nodbIngest{srv: srv}, nil
}

func (t *nodbIngest) serverPid() int { return t.srv.Pid() }
func (t *nodbIngest) close()         { t.srv.Stop() }

func (t *nodbIngest) newProducer(ctx context.Context, i int) (ingestProducer, error) {
	c, err := client.Dial(ctx, t.srv.URL(),
		client.WithProducer(producerName(i)),
		client.WithKeepalive(0, 0))
	if err != nil {
		return nil, err
	}
	return &nodbProducer{c: c, payload: json.RawMessage(ingestPayload(i))}, nil
}

type nodbProducer struct {
	c       *client.Client
	payload json.RawMessage
}

func (p *nodbProducer) publish(ctx context.Context) error {
	_, err := p.c.Publish(ctx, "bench/ingest", p.payload)
	return err
}

func (p *nodbProducer) publishAsync(ctx context.Context) func() error {
	f := p.c.PublishAsync(ctx, "bench/ingest", p.payload)
	return func() error { _, err := f.Wait(ctx); return err }
}

func (p *nodbProducer) close() { p.c.Close() }
