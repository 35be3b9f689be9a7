package view

import (
	"crypto/sha256"
	"sync/atomic"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// Subscription receives a view's updates in seq order. If its buffer fills
// (the consumer fell behind), updates stop and Lagged turns true: the consumer
// must resynchronise from the view's State and subscribe again.
type Subscription struct {
	v      *View
	C      chan Update
	lagged atomic.Bool
	closed atomic.Bool
}

// Subscribe returns a subscription with a buffer of n updates, and the state
// and seq from which its updates continue.
func (v *View) Subscribe(n int) *Subscription {
	s := &Subscription{v: v, C: make(chan Update, n)}
	v.subMu.Lock()
	v.subs[s] = struct{}{}
	v.subMu.Unlock()
	return s
}

// Lagged reports whether updates were dropped because the buffer was full.
func (s *Subscription) Lagged() bool { return s.lagged.Load() }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.v.subMu.Lock()
	if _, ok := s.v.subs[s]; ok {
		delete(s.v.subs, s)
		close(s.C)
	}
	s.v.subMu.Unlock()
}

func (v *View) broadcast(upd []Update) {
	if len(upd) == 0 {
		return
	}
	v.subMu.Lock()
	defer v.subMu.Unlock()
	for s := range v.subs {
		for _, u := range upd {
			select {
			case s.C <- u:
			default:
				s.lagged.Store(true)
				delete(v.subs, s)
				close(s.C)
			}
			if s.lagged.Load() {
				break
			}
		}
	}
}

func (v *View) closeSubs() {
	v.subMu.Lock()
	defer v.subMu.Unlock()
	for s := range v.subs {
		delete(v.subs, s)
		close(s.C)
	}
}
