package memlog_test

import (
	"testing"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/eventlogtest"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
)

func TestConformance(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log { return memlog.New() })
}
