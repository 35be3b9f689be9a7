package plugins

// SetEventFuel lowers the fuel of every later event, for tests of running
// out of it; the returned func restores it.
func SetEventFuel(n uint64) (restore func()) {
	old := eventFuel
	eventFuel = n
	return func() { eventFuel = old }
}
