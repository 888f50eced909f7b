// Package audittest keeps audit entries in memory, for the tests of the
// components that write them.
package audittest

import (
	"sync"

	"github.com/fluxpulse/fluxpulse/audit"
)

// Recorder keeps every entry logged to it. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
}

// Log keeps e.
func (r *Recorder) Log(e audit.Entry) {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
}

// Entries returns the entries kept so far, oldest first.
func (r *Recorder) Entries() []audit.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Entry(nil), r.entries...)
}
