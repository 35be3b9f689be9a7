// Command chaos is a reducer that leans on every source of nondeterminism Go
// offers: map iteration order, time.Now, math/rand, math/rand/v2 and
// crypto/rand. The host makes all of them deterministic per (view, seq), so
// replaying the same events must give the same state.
package main

import (
	crand "crypto/rand"
	"encoding/hex"
	"math/rand"
	randv2 "math/rand/v2"
	"strconv"
	"time"

	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// survivor lives in guest memory across events (until the next epoch).
var survivor = map[int]int{}

func init() {
	nodb.On("tick", func(s *nodb.State, e nodb.Event) error {
		m := map[string]int{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8}
		order := ""
		for k := range m {
			order += k
		}
		survivor[len(survivor)] = rand.Int()
		sum := 0
		for k, v := range survivor {
			sum += k * v % 1000
		}
		var b [8]byte
		_, _ = crand.Read(b[:])
		rec := nodb.Map(
			"order", order,
			"now", time.Now().UnixNano(),
			"mono", time.Since(start).Nanoseconds(),
			"rand", rand.Int63(),
			"randv2", randv2.Int64(),
			"crypto", hex.EncodeToString(b[:]),
			"survivors", sum,
		)
		return s.Set("/log/"+strconv.FormatUint(e.Seq(), 10), rec)
	})
}

var start = time.Now()

func main() {}
