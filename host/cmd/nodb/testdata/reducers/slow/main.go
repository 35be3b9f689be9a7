// Command slow is a reducer that takes a while over each event: it spins
// (a few tens of milliseconds) before setting /todos/ID to the event's text.
// Tests build it (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) for
// shadow replays that are still running when something else happens.
package main

import (
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// sink keeps the spin's result, so that the compiler keeps the spin.
var sink uint64

func spin() {
	x := sink
	for i := uint64(0); i < 30_000_000; i++ {
		x = x*6364136223846793005 + i
	}
	sink = x
}

func init() {
	nodb.On("todo/add", func(s *nodb.State, e nodb.Event) error {
		spin()
		return s.Set("/todos/"+nodb.Escape(e.Str("id")), e.Str("text"))
	})
}

func main() {}
