package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/abi/wire"
)

func publishCmd() *cobra.Command {
	var (
		cf                  clientOptions
		producer, typ, data string
		pseq                uint64
		timeout             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish one event and print its ack as JSON",
		Long: `Publish one event over the WebSocket protocol and print the ack:
{"seq":…,"duplicate":…}. Publishing the same --producer and --pseq again is
safe: it is acked as a duplicate with the original seq.`,
		Example: `  nodb publish --producer cli-1 --pseq 1 --type todo/add --data '{"id":"a","text":"milk"}'`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !json.Valid([]byte(data)) {
				return fmt.Errorf("--data is not valid JSON: %q", data)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			ws, err := cf.dialWS(ctx)
			if err != nil {
				return err
			}
			defer ws.Close()
			req := wire.Request{Type: wire.TypePublish, ID: 1, Event: wire.Event{Producer: producer, PSeq: pseq, Type: typ, Payload: []byte(data)}}
			if err := req.Event.Validate(); err != nil {
				return err
			}
			msg, err := wire.EncodeRequest(wire.JSON, &req)
			if err != nil {
				return err
			}
			if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				return fmt.Errorf("sending: %w", err)
			}
			for {
				rep, err := readReply(ctx, ws)
				if err != nil {
					return err
				}
				switch rep.Type {
				case wire.TypeAck:
					out, _ := json.Marshal(wire.Ack{Seq: rep.Seq, Duplicate: rep.Duplicate})
					fmt.Fprintln(os.Stdout, string(out))
					return nil
				case wire.TypeError:
					return &wire.Error{Code: rep.Code, Message: rep.Error, ExpectedPSeq: rep.ExpectedPSeq}
				}
			}
		},
	}
	cf.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&producer, "producer", "", "producer id (required)")
	f.Uint64Var(&pseq, "pseq", 0, "producer sequence number, 1 for a producer's first event (required)")
	f.StringVar(&typ, "type", "", "event type, e.g. todo/add (required)")
	f.StringVar(&data, "data", "null", "event payload as JSON")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	cmd.MarkFlagRequired("producer")
	cmd.MarkFlagRequired("pseq")
	cmd.MarkFlagRequired("type")
	return cmd
}

// wsURL turns a host address (http://h:p, ws://h:p or h:p) into the
// WebSocket endpoint URL.
func wsURL(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q is not a URL: %w", addr, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("--addr %q: scheme must be http, https, ws or wss", addr)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/ws"
	}
	return u.String(), nil
}

// httpURL turns a host address into its HTTP base URL (no trailing slash).
func httpURL(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q is not a URL: %w", addr, err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path = ""
	return strings.TrimRight(u.String(), "/"), nil
}

func readReply(ctx context.Context, ws *websocket.Conn) (*wire.Reply, error) {
	if dl, ok := ctx.Deadline(); ok {
		ws.SetReadDeadline(dl)
	}
	_, data, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("reading reply: %w", err)
	}
	var rep wire.Reply
	if err := wire.DecodeReply(wire.JSON, data, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
