package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS JetStream under ingest: nats-server in this process (file storage in a
// temp dir), clients over loopback TCP. syncAlways sets sync_interval: always
// so a PubAck means the message was fsynced, like a nodb ack; without it the
// server syncs every 2 minutes (the default) and an ack is not durable.

type jsIngest struct {
	srv *server.Server
	dir string
	url string
}

func startJetStreamIngest(syncAlways bool) func(ctx context.Context, env *Env) (ingestTarget, error) {
	return func(ctx context.Context, env *Env) (ingestTarget, error) {
		dir, err := os.MkdirTemp(env.TmpDir, "jetstream-")
		if err != nil {
			return nil, err
		}
		opts := &server.Options{
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   dir,
			SyncAlways: syncAlways,
			NoLog:      true,
			NoSigs:     true,
			MaxConn:    4096,
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			return nil, err
		}
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			srv.Shutdown()
			return nil, fmt.Errorf("nats-server not ready")
		}
		t := &jsIngest{srv: srv, dir: dir, url: srv.ClientURL()}
		atCleanup(t.close)
		nc, err := nats.Connect(t.url)
		if err != nil {
			t.close()
			return nil, err
		}
		defer nc.Close()
		js, err := nc.JetStream()
		if err != nil {
			t.close()
			return nil, err
		}
		if _, err := js.AddStream(&nats.StreamConfig{
			Name:       "INGEST",
			Subjects:   []string{"ingest.>"},
			Storage:    nats.FileStorage,
			Duplicates: 2 * time.Minute, // Nats-Msg-Id dedupe window (the default)
		}); err != nil {
			t.close()
			return nil, err
		}
		return t, nil
	}
}

func (t *jsIngest) serverPid() int { return 0 }

func (t *jsIngest) close() {
	if t.srv != nil {
		t.srv.Shutdown()
		t.srv.WaitForShutdown()
		t.srv = nil
		os.RemoveAll(t.dir)
	}
}

func (t *jsIngest) newProducer(ctx context.Context, i int) (ingestProducer, error) {
	nc, err := nats.Connect(t.url, nats.Name(fmt.Sprintf("bench-%d", i)))
	if err != nil {
		return nil, err
	}
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(1024))
	if err != nil {
		nc.Close()
		return nil, err
	}
	prod := producerName(i)
	return &jsProducer{nc: nc, js: js, subject: "ingest." + strconv.Itoa(i), idPrefix: prod + ":", payload: ingestPayload(i)}, nil
}

type jsProducer struct {
	nc       *nats.Conn
	js       nats.JetStreamContext
	subject  string
	idPrefix string
	payload  []byte
	pseq     uint64
	idBuf    []byte
}

// msgID is producer:pseq, the same identity a nodb event has.
func (p *jsProducer) msgID() string {
	p.pseq++
	p.idBuf = strconv.AppendUint(append(p.idBuf[:0], p.idPrefix...), p.pseq, 10)
	return string(p.idBuf)
}

func (p *jsProducer) publish(ctx context.Context) error {
	_, err := p.js.Publish(p.subject, p.payload, nats.MsgId(p.msgID()), nats.Context(ctx))
	return err
}

func (p *jsProducer) publishAsync(ctx context.Context) func() error {
	f, err := p.js.PublishAsync(p.subject, p.payload, nats.MsgId(p.msgID()))
	if err != nil {
		return func() error { return err }
	}
	return func() error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *jsProducer) close() { p.nc.Close() }
