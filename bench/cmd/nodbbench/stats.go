package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds: 32 buckets per
// power of two (about 3% precision), fixed size, no allocation to record.
// Each producer goroutine owns one; they are merged at the end.
type hist struct {
	counts [64 << histSubBits]uint32
	n      uint64
}

const histSubBits = 5

func histBucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 - histSubBits
	return (e+1)<<histSubBits + int((v>>uint(e))&(1<<histSubBits-1))
}

// histValue is the middle of bucket b.
func histValue(b int) uint64 {
	if b < 1<<histSubBits {
		return uint64(b)
	}
	e := uint(b>>histSubBits - 1)
	m := uint64(b&(1<<histSubBits-1)) + 1<<histSubBits
	return m<<e + (uint64(1)<<e)/2
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q <= 1).
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(len(h.counts) - 1))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
