//go:build !wasip1

package nodb_test

import (
	"fmt"

	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// A reducer registers handlers with On (in init, in a real plugin) and
// changes state by path. Natively, a Harness plays the host.
func Example() {
	nodb.On("counter/add", func(s *nodb.State, e nodb.Event) error {
		return s.Set("/counters/"+nodb.Escape(e.Str("name")), s.GetInt("/counters/"+nodb.Escape(e.Str("name")))+e.Int("by"))
	})
	h := nodb.NewHarness()
	_ = h.Reduce("counter/add", `{"name":"a/b","by":2}`)
	_ = h.Reduce("counter/add", `{"name":"a/b","by":3}`)
	fmt.Println(h.JSON(""))
	// Output: {"counters":{"a/b":5}}
}

// Returning an error rejects the event; the host discards its changes.
func ExampleHarness_Reduce() {
	nodb.On("account/withdraw", func(s *nodb.State, e nodb.Event) error {
		if e.Int("amount") > s.GetInt("/balance") {
			return fmt.Errorf("insufficient funds")
		}
		return s.Set("/balance", s.GetInt("/balance")-e.Int("amount"))
	})
	h := nodb.NewHarness()
	fmt.Println(h.Reduce("account/withdraw", `{"amount":10}`))
	// Output: nodb: event rejected: insufficient funds
}

// Values read without reflection: typed getters, JSON Pointers, iteration.
func ExampleValue() {
	nodb.On("example/value", func(s *nodb.State, e nodb.Event) error {
		fmt.Println(e.Str("user"), e.Get("/tags/1").Str(), e.Get("/pos/x").Float())
		e.Get("/pos").Each(func(k string, v nodb.Value) bool {
			fmt.Println(k, v)
			return true
		})
		return nil
	})
	_ = nodb.NewHarness().Reduce("example/value", `{"user":"ann","tags":["a","b"],"pos":{"x":1.5,"y":-2}}`)
	// Output:
	// ann b 1.5
	// x 1.5
	// y -2
}
