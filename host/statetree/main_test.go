package statetree

import (
	"flag"
	"os"
	"testing"
)

// TestMain raises rapid's default number of checks: the property tests are
// cheap, and rare trie shapes need a few thousand cases to show up. An
// explicit -rapid.checks wins.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if !explicit && !testing.Short() {
		flag.Set("rapid.checks", "3000")
	}
	os.Exit(m.Run())
}
