package distributor

import (
	"math"
	"sync"
	"time"
)

// rateLimiters keeps one token bucket per tenant. Tenants never share a
// lock: a tenant at its limit does not slow down another.
type rateLimiters struct {
	m sync.Map // tenant -> *bucket
}

type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// empty reports whether the tenant's bucket, refilled to now, holds less
// than one token: then any request would be refused, before it is even read.
func (r *rateLimiters) empty(tenant string, now time.Time, rate float64, burst int) bool {
	v, ok := r.m.Load(tenant)
	if !ok {
		return false
	}
	b := v.(*bucket)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokens+now.Sub(b.last).Seconds()*rate < 1 && float64(burst) >= 1
}

// reserve takes n tokens from the tenant's bucket, refilled at rate per
// second up to burst. It returns 0 on success, else how long until n tokens
// would be there (nothing is taken then).
func (r *rateLimiters) reserve(tenant string, now time.Time, rate float64, burst, n int) time.Duration {
	v, ok := r.m.Load(tenant)
	if !ok {
		v, _ = r.m.LoadOrStore(tenant, &bucket{tokens: float64(burst), last: now})
	}
	b := v.(*bucket)
	b.mu.Lock()
	defer b.mu.Unlock()
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+elapsed*rate)
		b.last = now
	}
	if need := float64(n) - b.tokens; need > 0 {
		return time.Duration(math.Ceil(need/rate*1000)) * time.Millisecond
	}
	b.tokens -= float64(n)
	return 0
}
