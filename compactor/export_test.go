package compactor

import "time"

// SetClock replaces the compactor's clock, for tests whose outcome depends
// on which windows have settled.
func (c *Compactor) SetClock(now func() time.Time) { c.now = now }
