package plugins

// SetRestore turns the reuse of a guest's first image on or off (tests
// compare both).
func SetRestore(on bool) { noRestore = !on }

// FreshGuests returns how many guests the instance instantiated.
func FreshGuests(i *Instance) int { return i.fresh }
