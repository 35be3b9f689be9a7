package deploy

import "sort"

// CompiledVersions returns the sha256s of the versions whose compiled
// modules the manager holds, sorted.
func (m *Manager) CompiledVersions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.modules))
	for sha := range m.modules {
		out = append(out, sha)
	}
	sort.Strings(out)
	return out
}
