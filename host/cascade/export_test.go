package cascade

// Held returns, per input of f, the seq it has reached and how many
// changes f holds for it (for the tests of package cascade_test).
func Held(f *Feed) (seqs []uint64, pending []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.in {
		seqs = append(seqs, in.seq)
		pending = append(pending, len(in.pending))
	}
	return seqs, pending
}
