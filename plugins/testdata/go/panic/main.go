// Command panic is a broken reducer: "boom" events panic, "ok" events set a
// counter. The host must report the panic as a TrapError with the message.
package main

import nodb "github.com/nodb-dev/nodb/sdk/guest/go"

func init() {
	nodb.On("ok", func(s *nodb.State, e nodb.Event) error {
		return s.Set("/n", s.GetInt("/n")+1)
	})
	nodb.On("boom", func(s *nodb.State, e nodb.Event) error {
		var m map[string]int
		m["x"] = 1 // nil map write: a runtime panic
		return nil
	})
	nodb.On("overflow", func(s *nodb.State, e nodb.Event) error {
		return s.Set("/depth", recurse(0))
	})
	nodb.On("hog", func(s *nodb.State, e nodb.Event) error {
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	})
}

func recurse(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	return recurse(n+1) + int(pad[0])
}

func main() {}
