// Command owners is a test reducer: owner/assign {id, owner} records who
// owns a todo at /owners/ID.
package main

import nodb "github.com/nodb-dev/nodb/sdk/guest/go"

func init() {
	nodb.On("owner/assign", func(s *nodb.State, e nodb.Event) error {
		return s.Set("/owners/"+nodb.Escape(e.Str("id")), e.Str("owner"))
	})
}

func main() {}
