// Package logthrottle lets a log message through at most once per interval
// and key, so that a fault that repeats at every evaluation or
// notification (a rule that fails, a receiver the firewall refuses) does
// not flood the log. What it holds back is counted by the caller's
// metrics, not here.
package logthrottle

import (
	"sync"
	"time"
)

// Throttle remembers when each key was last let through. It is safe for
// concurrent use.
type Throttle struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

// New returns a throttle letting each key through once per every.
func New(every time.Duration) *Throttle {
	return &Throttle{every: every, last: map[string]time.Time{}}
}

// Allow reports whether a message for key may be logged now, and if so
// starts the key's interval.
func (t *Throttle) Allow(key string) bool {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[key]; ok && now.Sub(last) < t.every {
		return false
	}
	t.last[key] = now
	return true
}

// Forget drops a key (a tenant that went away).
func (t *Throttle) Forget(key string) {
	t.mu.Lock()
	delete(t.last, key)
	t.mu.Unlock()
}
