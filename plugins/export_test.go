package plugins

// SetEventFuel lowers the fuel of every later event, for tests of running
// out of it; the returned func restores it.
func SetEventFuel(n uint64) (restore func()) {
	old := eventFuel
	eventFuel = n
	return func() { eventFuel = old }
}

// SetPrefetch turns the background preparation of the next epoch's guest on
// or off; the returned func restores it.
func SetPrefetch(on bool) (restore func()) {
	old := prefetchOn
	prefetchOn = on
	return func() { prefetchOn = old }
}

// Adopted returns how many prefetched guests the instance has taken over.
func (i *Instance) Adopted() int { return i.adopted }
