// Command spin is a hostile test cascade: it loops forever on the first
// patch of its input (a third party's plugin over its budget).
package main

import nodb "github.com/nodb-dev/nodb/sdk/guest/go"

var sink int

func init() {
	nodb.OnPatch("todos", func(s *nodb.State, p nodb.Patch) error {
		for i := 0; ; i++ {
			sink += i
		}
	})
}

func main() {}
