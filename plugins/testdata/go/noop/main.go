// Command noop is a Go reducer that consumes todo events and does nothing:
// BenchmarkReduceBoundary measures what one event costs a Go guest before
// any state access (the host's frame write, the export call, Go's
// wasmexport entry and the SDK's frame decoding and dispatch).
package main

import nodb "github.com/nodb-dev/nodb/sdk/guest/go"

func init() {
	for _, t := range []string{"todo/add", "todo/toggle", "todo/rename", "todo/delete"} {
		nodb.On(t, func(*nodb.State, nodb.Event) error { return nil })
	}
}

func main() {}
