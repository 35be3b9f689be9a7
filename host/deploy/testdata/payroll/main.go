// Command payroll is a test cascade over two views, todos and payroll: a
// third party granted only todos must not deploy it.
package main

import nodb "github.com/nodb-dev/nodb/sdk/guest/go"

func init() {
	count := func(s *nodb.State, p nodb.Patch) error {
		return s.Set("/n", nodb.Input("payroll").Len("/salaries"))
	}
	nodb.OnPatch("todos", count)
	nodb.OnPatch("payroll", count)
}

func main() {}
