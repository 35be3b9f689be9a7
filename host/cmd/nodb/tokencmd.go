package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/host/auth"
)

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the bearer tokens of a token file (nodb serve --tokens FILE)",
		Long: `Manage a token file. The file holds each token's id, name, scopes, limits
and the SHA-256 of its secret, never the secret itself. A running
nodb serve --tokens FILE notices changes within a second: new tokens work at
once, revoked tokens are refused and their WebSockets closed (at their next
message or keepalive).

Scopes:
  admin            any operation
  publish          append events of any type
  publish:PREFIX   append events whose type starts with PREFIX (publish:todo/)
  read:VIEW        read and subscribe to one view; read:* every view
  deploy:cascade   upload and activate cascades over views the token may read`,
	}
	cmd.AddCommand(tokenCreateCmd(), tokenListCmd(), tokenRevokeCmd())
	return cmd
}

func tokenCreateCmd() *cobra.Command {
	var (
		file, name  string
		scopes      []string
		memPages    uint32
		eventTimeMS int64
	)
	cmd := &cobra.Command{
		Use:   "create --tokens FILE --name NAME --scope SCOPE [--scope SCOPE]…",
		Short: "Create a token and print its secret (once) on stdout",
		Long: `Create a token in FILE (created if missing, mode 0600) and print its secret
on stdout; everything else goes to stderr. The secret is shown only this
once: the file keeps its SHA-256. Give it to the client, e.g. as
NODB_TOKEN=… for the nodb CLI.

--memory-pages and --event-timeout bound the plugins the token may deploy
(deploy:cascade): a manifest without limits gets these, a manifest asking
for more is refused. 0 (the default) leaves only the host's own maxima.`,
		Example: `  nodb token create --tokens tokens.json --name ops --scope admin
  nodb token create --tokens tokens.json --name todo-app --scope publish:todo/ --scope read:todos
  nodb token create --tokens tokens.json --name stats-bot --scope read:todos --scope deploy:cascade --memory-pages 256 --event-timeout 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, secret, err := auth.NewToken(name, scopes, auth.Limits{MemoryPages: memPages, EventTimeoutMS: eventTimeMS})
			if err != nil {
				return err
			}
			if err := auth.Update(file, func(f *auth.File) error { return f.Add(tok) }); err != nil {
				return err
			}
			fmt.Println(secret)
			fmt.Fprintf(os.Stderr, "created token %q (id %s) with scopes %s in %s\n", tok.Name, tok.ID, strings.Join(tok.Scopes, " "), file)
			fmt.Fprintln(os.Stderr, "the secret above is shown only now; the file keeps only its SHA-256")
			if (memPages > 0 || eventTimeMS > 0) && containsString(scopes, auth.ScopeAdmin) {
				fmt.Fprintln(os.Stderr, "note: limits do not apply to admin tokens")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "tokens", "", "token file (required)")
	f.StringVar(&name, "name", "", "unique human name of the token, shown in logs and errors (required)")
	f.StringArrayVar(&scopes, "scope", nil, "scope to grant (repeatable): admin, publish, publish:PREFIX, read:VIEW, read:*, deploy:cascade")
	f.Uint32Var(&memPages, "memory-pages", 0, "largest guest memory of a plugin the token deploys, in 64 KiB pages (0: the host's maximum)")
	f.Int64Var(&eventTimeMS, "event-timeout", 0, "largest per-event time limit of a plugin the token deploys, in ms (0: the host's maximum)")
	cmd.MarkFlagRequired("tokens")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("scope")
	return cmd
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tokenListCmd() *cobra.Command {
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list --tokens FILE",
		Short: "List the tokens of a token file (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := auth.ReadFile(file)
			if err != nil {
				return err
			}
			if asJSON {
				type entry struct {
					ID      string      `json:"id"`
					Name    string      `json:"name"`
					Scopes  []string    `json:"scopes"`
					Limits  auth.Limits `json:"limits"`
					Created time.Time   `json:"created"`
				}
				out := make([]entry, 0, len(f.Tokens))
				for _, t := range f.Tokens {
					out = append(out, entry{t.ID, t.Name, t.Scopes, t.Limits, t.Created})
				}
				b, _ := json.MarshalIndent(map[string]any{"tokens": out}, "", "  ")
				fmt.Println(string(b))
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tLIMITS\tCREATED")
			for _, t := range f.Tokens {
				lim := "-"
				var parts []string
				if t.Limits.MemoryPages > 0 {
					parts = append(parts, fmt.Sprintf("memory_pages=%d", t.Limits.MemoryPages))
				}
				if t.Limits.EventTimeoutMS > 0 {
					parts = append(parts, fmt.Sprintf("event_timeout_ms=%d", t.Limits.EventTimeoutMS))
				}
				if len(parts) > 0 {
					lim = strings.Join(parts, ",")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Scopes, " "), lim, t.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&file, "tokens", "", "token file (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.MarkFlagRequired("tokens")
	return cmd
}

func tokenRevokeCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "revoke --tokens FILE ID",
		Short: "Revoke a token (by id, or by name)",
		Long: `Remove a token from the token file. A running nodb serve --tokens FILE
refuses it within a second and closes the WebSockets opened with it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var gone auth.Token
			err := auth.Update(file, func(f *auth.File) (err error) {
				gone, err = f.Remove(args[0])
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "revoked token %q (id %s)\n", gone.Name, gone.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "tokens", "", "token file (required)")
	cmd.MarkFlagRequired("tokens")
	return cmd
}
