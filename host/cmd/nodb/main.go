// Command nodb is the nodb host and its command-line client: `nodb serve`
// runs the host; the other commands talk to a running host or read a data
// directory.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is the nodb version, set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	root := &cobra.Command{
		Use:           "nodb",
		Short:         "nodb makes the event log the database",
		Long:          "nodb keeps an append-only, durable history of events and builds live views from it with WebAssembly reducers.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(serveCmd(), publishCmd(), logCmd(), verifyCmd(), stateCmd(), watchCmd(), deployCmd(), pluginsCmd(), replayCmd(), rollbackCmd(), confirmCmd())
	root.AddCommand(tokenCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "nodb:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}
