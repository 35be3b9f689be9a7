package filelog

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
)

// Defaults for Config fields left zero.
const (
	// DefaultSegmentSize is the size at which a segment is sealed and the
	// next one started.
	DefaultSegmentSize = 64 << 20
	// DefaultMaxRecordSize bounds a record's producer, type and payload
	// together.
	DefaultMaxRecordSize = 16 << 20
	// MinSegmentSize is the smallest SegmentSize accepted.
	MinSegmentSize = 1 << 10
)

// SubDir is the directory under Config.Dir that holds the segment files.
const SubDir = "log"

// Config configures a file log. Zero fields take their defaults.
type Config struct {
	// Dir is nodb's data directory. The log lives in Dir/log (SubDir): the
	// segment files, a LOCK file, and torn/ for bytes cut at recovery.
	Dir string
	// SegmentSize is the size in bytes at which the current segment is
	// sealed: an Append whose batch would take the segment past it starts
	// a new segment first. A batch never spans segments, so a segment
	// holding one batch larger than SegmentSize grows past it.
	// Default DefaultSegmentSize, minimum MinSegmentSize.
	SegmentSize int64
	// MaxRecordSize bounds len(Producer)+len(Type)+len(Payload) of a
	// record given to Append (ErrTooLarge). Default DefaultMaxRecordSize, at
	// most 1 GiB. Reading accepts any length up to 1 GiB, so lowering it
	// never makes an existing log unreadable.
	MaxRecordSize int
	// FS is the file system to use; nil means OSFS.
	FS FS
	// Logger receives recovery and failure reports; nil means no logging.
	Logger hclog.Logger
	// OnRecord, if set, is called during Open for every record the log
	// holds, in seq order, as the recovery scan checks it (records of a
	// torn tail that recovery cuts are not reported). It lets a caller
	// rebuild what it derives from the whole history in the same pass
	// instead of reading the log again: the chronicler's dedupe table
	// (chronicler.Rebuilder). producer is valid only during the call. An
	// error fails Open.
	OnRecord func(seq, pseq uint64, producer []byte, time int64) error
}

// DefaultConfig returns a Config for the data directory dir with every
// other field at its default.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:           dir,
		SegmentSize:   DefaultSegmentSize,
		MaxRecordSize: DefaultMaxRecordSize,
		FS:            OSFS{},
		Logger:        hclog.NewNullLogger(),
	}
}

// withDefaults fills in zero fields.
func (c Config) withDefaults() Config {
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.MaxRecordSize == 0 {
		c.MaxRecordSize = DefaultMaxRecordSize
	}
	if c.FS == nil {
		c.FS = OSFS{}
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Validate reports whether c, with defaults applied, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("filelog: Config.Dir is empty"))
	}
	if c.SegmentSize < MinSegmentSize {
		errs = append(errs, fmt.Errorf("filelog: Config.SegmentSize %d is below the minimum %d", c.SegmentSize, MinSegmentSize))
	}
	if c.MaxRecordSize < 0 || c.MaxRecordSize > maxDataLimit {
		errs = append(errs, fmt.Errorf("filelog: Config.MaxRecordSize %d is outside 1..%d", c.MaxRecordSize, maxDataLimit))
	}
	return errors.Join(errs...)
}

func (c Config) logDir() string { return filepath.Join(c.Dir, SubDir) }
