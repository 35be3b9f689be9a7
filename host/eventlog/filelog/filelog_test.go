package filelog_test

import (
	"testing"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/eventlogtest"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

func TestConformance(t *testing.T) {
	eventlogtest.RunDurable(t, func(t *testing.T, dir string) eventlog.Log {
		l, err := filelog.Open(filelog.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

// Small segments: every batch of the suite rolls over, reads cross
// segment boundaries.
func TestConformanceSmallSegments(t *testing.T) {
	eventlogtest.RunDurable(t, func(t *testing.T, dir string) eventlog.Log {
		l, err := filelog.Open(filelog.Config{Dir: dir, SegmentSize: filelog.MinSegmentSize})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
