package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/abi/wire"
)

func stateCmd() *cobra.Command {
	var cf clientOptions
	var path string
	var at int64
	cmd := &cobra.Command{
		Use:   "state VIEW",
		Short: "Print a view's state (or the value at --path) as JSON",
		Example: `  nodb state todos
  nodb state todos --path /todos/a1
  nodb state todos --at 1200`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := cf.base()
			if err != nil {
				return err
			}
			q := url.Values{}
			if path != "" {
				q.Set("path", path)
			}
			if at >= 0 {
				q.Set("at", strconv.FormatInt(at, 10))
			}
			u := base + "/v1/views/" + url.PathEscape(args[0]) + "/state"
			if len(q) > 0 {
				u += "?" + q.Encode()
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			resp, err := cf.do(ctx, "GET", u, nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			fmt.Println(string(body))
			return nil
		},
	}
	cf.addFlags(cmd)
	cmd.Flags().StringVar(&path, "path", "", "JSON Pointer of the value to print (default: the whole state)")
	cmd.Flags().Int64Var(&at, "at", -1, "print the state as of this seq (time travel; default: the current state)")
	return cmd
}

func watchCmd() *cobra.Command {
	var cf clientOptions
	var since int64
	cmd := &cobra.Command{
		Use:   "watch VIEW",
		Short: "Print a view's snapshot, then each patch, as JSON lines",
		Long: `Subscribe to a view and print every message as one JSON line: the
snapshot {"type":"snapshot","seq":…,"state":…}, then {"type":"patch","seq":…,"ops":[…]}
for each change and {"type":"progress","seq":…} markers. Runs until interrupted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ws, err := cf.dialWS(ctx)
			if err != nil {
				return err
			}
			defer ws.Close()
			req := wire.Request{Type: wire.TypeSubscribe, ID: 1, View: args[0]}
			if since >= 0 {
				req.Since, req.HasSince = uint64(since), true
			}
			msg, _ := wire.EncodeRequest(wire.JSON, &req)
			if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				return err
			}
			go func() { <-ctx.Done(); ws.Close() }()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("connection ended: %w", err)
				}
				var r wire.Reply
				if err := wire.DecodeReply(wire.JSON, data, &r); err != nil {
					return err
				}
				switch r.Type {
				case wire.TypeHello, wire.TypePong:
					continue
				case wire.TypeError:
					return &wire.Error{Code: r.Code, Message: r.Error}
				}
				os.Stdout.Write(append(data, '\n'))
			}
		},
	}
	cf.addFlags(cmd)
	cmd.Flags().Int64Var(&since, "since", -1, "resume after this seq (missed patches if the host still holds them, else a snapshot flagged reset)")
	return cmd
}
