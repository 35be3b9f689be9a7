package plugins

import (
	"bytes"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi"
)

// Rate limit of plugin output (stdout, stderr and log), per instance: a token
// bucket of logBurst lines refilled at logRate lines per second. Lines over
// the limit are counted and the count is logged once tokens are back.
const (
	logBurst   = 100
	logRate    = 20.0
	stderrHead = 1024 // bytes of stderr kept from the start of a call
	stderrTail = 3072 // and from its end, for TrapError.Stderr
)

// output turns guest output into rate-limited log lines.
type output struct {
	log     hclog.Logger
	tokens  float64
	last    time.Time
	dropped uint64
	partial [3][]byte // unfinished line per fd (1, 2)
	head    []byte    // the start of the current call's stderr
	tail    []byte    // the end of stderr
	skipped bool      // bytes between head and tail were dropped
}

// reset starts a new guest call.
func (o *output) reset() {
	if len(o.head) > 0 || len(o.tail) > 0 {
		o.head, o.tail, o.skipped = o.head[:0], o.tail[:0], false
	}
}

func newOutput(l hclog.Logger) *output {
	return &output{log: l, tokens: logBurst}
}

func (o *output) allow() bool {
	now := time.Now()
	if !o.last.IsZero() {
		o.tokens += now.Sub(o.last).Seconds() * logRate
		if o.tokens > logBurst {
			o.tokens = logBurst
		}
	}
	o.last = now
	if o.tokens < 1 {
		o.dropped++
		return false
	}
	o.tokens--
	if o.dropped > 0 {
		o.log.Warn("plugin output rate-limited", "dropped_lines", o.dropped)
		o.dropped = 0
	}
	return true
}

// write accepts bytes written to fd 1 or 2.
func (o *output) write(fd int, b []byte) {
	if fd == 2 {
		o.keep(b)
	}
	for len(b) > 0 {
		nl := bytes.IndexByte(b[:min(len(b), abi.MaxLogSize+1)], '\n')
		if nl < 0 {
			room := abi.MaxLogSize - len(o.partial[fd])
			if len(b) >= room {
				o.partial[fd] = append(o.partial[fd], b[:room]...)
				o.flush(fd)
				b = b[room:]
				continue
			}
			o.partial[fd] = append(o.partial[fd], b...)
			return
		}
		line := b[:nl]
		if len(o.partial[fd])+len(line) > abi.MaxLogSize {
			line = line[:abi.MaxLogSize-len(o.partial[fd])]
		}
		o.partial[fd] = append(o.partial[fd], line...)
		o.flush(fd)
		b = b[nl+1:]
	}
}

func (o *output) flush(fd int) {
	if len(o.partial[fd]) == 0 {
		return
	}
	if o.allow() {
		stream := "stdout"
		if fd == 2 {
			stream = "stderr"
		}
		o.log.Info(string(o.partial[fd]), "stream", stream)
	}
	o.partial[fd] = o.partial[fd][:0]
}

// logMessage handles the log host function.
func (o *output) logMessage(level int32, b []byte) {
	if len(b) > abi.MaxLogSize {
		b = b[:abi.MaxLogSize]
	}
	if !o.allow() {
		return
	}
	msg := string(b)
	switch level {
	case abi.LevelTrace:
		o.log.Trace(msg)
	case abi.LevelDebug:
		o.log.Debug(msg)
	case abi.LevelInfo:
		o.log.Info(msg)
	case abi.LevelWarn:
		o.log.Warn(msg)
	case abi.LevelError:
		o.log.Error(msg)
	default:
		o.log.Info(msg, "level", strconv.Itoa(int(level)))
	}
}

// keep records stderr bytes for trap reports: the first stderrHead bytes of
// the call and the last stderrTail.
func (o *output) keep(b []byte) {
	if n := min(stderrHead-len(o.head), len(b)); n > 0 {
		o.head = append(o.head, b[:n]...)
		b = b[n:]
	}
	if len(b) == 0 {
		return
	}
	if len(b) >= stderrTail {
		o.skipped = o.skipped || len(o.tail) > 0 || len(b) > stderrTail
		o.tail = append(o.tail[:0], b[len(b)-stderrTail:]...)
		return
	}
	o.tail = append(o.tail, b...)
	if len(o.tail) > 2*stderrTail {
		o.skipped = true
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-stderrTail:]...)
	}
}

// stderr returns what the current call wrote to stderr (its start and end)
// and flushes partial lines to the log.
func (o *output) stderr() string {
	o.flush(1)
	o.flush(2)
	t := o.tail
	if len(t) > stderrTail {
		t = t[len(t)-stderrTail:]
		o.skipped = true
	}
	if o.skipped {
		return string(o.head) + "\n[...]\n" + string(t)
	}
	return string(o.head) + string(t)
}
