// Command owners2 is owners with a change of results (owner names are
// upper-cased), to hot-swap an upstream of a cascade.
package main

import (
	"strings"

	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

func init() {
	nodb.On("owner/assign", func(s *nodb.State, e nodb.Event) error {
		return s.Set("/owners/"+nodb.Escape(e.Str("id")), strings.ToUpper(e.Str("owner")))
	})
}

func main() {}
