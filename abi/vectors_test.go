package abi_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// Vectors is the shape of testdata/vectors.json, the ABI conformance vectors
// every SDK checks itself against.
type Vectors struct {
	Events []struct {
		Name     string `json:"name"`
		Seq      string `json:"seq"`
		Time     string `json:"time"`
		PSeq     string `json:"pseq"`
		Producer string `json:"producer"`
		Type     string `json:"type"`
		Payload  string `json:"payload"`
		Frame    string `json:"frame"`
	} `json:"events"`
	Values []struct {
		Name string `json:"name"`
		JSON string `json:"json"`
		CBOR string `json:"cbor"`
	} `json:"values"`
	InvalidJSON   []string `json:"invalid_json"`
	InvalidValues []struct {
		Name string `json:"name"`
		CBOR string `json:"cbor"`
	} `json:"invalid_values"`
	AcceptedValues []struct {
		Name string `json:"name"`
		CBOR string `json:"cbor"`
		JSON string `json:"json"`
	} `json:"accepted_values"`
	Paths []struct {
		Path string   `json:"path"`
		Keys []string `json:"keys"`
	} `json:"paths"`
	InvalidPaths []string    `json:"invalid_paths"`
	Epochs       [][2]string `json:"epochs"`
}

func loadVectors(t testing.TB) *Vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

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
