// Package abitest gives Go tests the ABI conformance vectors
// (abi/testdata/vectors.json): the abi package's own tests and those of each
// SDK load them from here, so there is one description of the file.
package abitest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Vectors is the shape of testdata/vectors.json, the ABI conformance vectors
// every SDK checks itself against.
type Vectors struct {
	Events         []Event         `json:"events"`
	Values         []Value         `json:"values"`
	InvalidJSON    []string        `json:"invalid_json"`
	InvalidValues  []InvalidValue  `json:"invalid_values"`
	AcceptedValues []AcceptedValue `json:"accepted_values"`
	Paths          []PathVector    `json:"paths"`
	InvalidPaths   []string        `json:"invalid_paths"`
	Epochs         [][2]string     `json:"epochs"`
}

// Event is an event's fields and the exact frame the host writes for it
// (numbers as decimal strings, payload as JSON text, frame in hex).
type Event struct {
	Name     string `json:"name"`
	Seq      string `json:"seq"`
	Time     string `json:"time"`
	PSeq     string `json:"pseq"`
	Producer string `json:"producer"`
	Type     string `json:"type"`
	Payload  string `json:"payload"`
	Frame    string `json:"frame"`
}

// Value is a JSON text and its exact CBOR (hex).
type Value struct {
	Name string `json:"name"`
	JSON string `json:"json"`
	CBOR string `json:"cbor"`
}

// InvalidValue is CBOR (hex) that readers must refuse.
type InvalidValue struct {
	Name string `json:"name"`
	CBOR string `json:"cbor"`
}

// AcceptedValue is CBOR (hex) in a non-canonical form readers must accept,
// and the JSON it means.
type AcceptedValue struct {
	Name string `json:"name"`
	CBOR string `json:"cbor"`
	JSON string `json:"json"`
}

// PathVector is a JSON Pointer and its unescaped keys.
type PathVector struct {
	Path string   `json:"path"`
	Keys []string `json:"keys"`
}

// Path is the file's path on this machine (found next to this package's
// source, so tests in any directory can load it).
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "vectors.json")
}

// Load reads and decodes the vectors, failing t if it cannot or if a
// section is empty.
func Load(t testing.TB) *Vectors {
	t.Helper()
	b, err := os.ReadFile(Path())
	if err != nil {
		t.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Events) == 0 || len(v.Values) == 0 || len(v.InvalidValues) == 0 || len(v.AcceptedValues) == 0 || len(v.Paths) == 0 {
		t.Fatal("vectors.json has an empty section")
	}
	return &v
}
