package abi_test

import (
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/nodb-dev/nodb/abi/abitest"
)

func loadVectors(t testing.TB) *abitest.Vectors { return abitest.Load(t) }

func mustU(t testing.TB, s string) uint64 {
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustI(t testing.TB, s string) int64 {
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
