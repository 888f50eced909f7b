package ingester

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// refCache maps a series' key (its labels as a sender encodes them, hashed
// to 96 bits) to its reference in the tenant's head. A series found here was
// validated and created before: its samples skip validation, label building
// and the head's own lookup by labels; the head then finds the series by
// reference alone.
//
// The cache is per tenant, so a key that collided could only mix up two
// series of the same tenant, and 96 bits make that practically impossible.
// A reference whose series the head deleted is detected on use (the head
// then finds no series and refuses the empty label set it was given) and
// dropped; the cache is emptied when the deletions reach half its size.
type refCache struct {
	shards  [refShards]refShard
	size    atomic.Int64
	deleted atomic.Int64
}

const refShards = 64

// refShard is one lock and map of the cache, padded to its own cache
// lines: two shards sharing one made every lookup on one core invalidate
// the other core's copy of the lock (#18).
type refShard struct {
	mu sync.RWMutex
	// m is keyed by the key's first 64 bits, so that lookups take the
	// runtime's fast path for uint64 keys; the entry holds the other 32,
	// and a lookup whose 32 bits differ is a miss. Two keys of one
	// tenant equal in their first 64 bits take turns in the entry.
	m map[uint64]refEntry
	_ [128 - 24 - 8]byte
}

type refEntry struct {
	ref storage.SeriesRef
	h2  uint32
}

func newRefCache() *refCache {
	c := &refCache{}
	for i := range c.shards {
		c.shards[i].m = map[uint64]refEntry{}
	}
	return c
}

// shard picks by the key's last 32 bits, which the maps do not hash.
func (c *refCache) shard(k remotewrite.SeriesKey) *refShard { return &c.shards[k.H2%refShards] }

func (c *refCache) get(k remotewrite.SeriesKey) (storage.SeriesRef, bool) {
	if k.IsZero() {
		return 0, false
	}
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[k.H1]
	s.mu.RUnlock()
	if !ok || e.h2 != k.H2 {
		return 0, false
	}
	return e.ref, true
}

func (c *refCache) put(k remotewrite.SeriesKey, ref storage.SeriesRef) {
	if k.IsZero() {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	if _, ok := s.m[k.H1]; !ok {
		c.size.Add(1)
	}
	s.m[k.H1] = refEntry{ref: ref, h2: k.H2}
	s.mu.Unlock()
}

func (c *refCache) forget(k remotewrite.SeriesKey) {
	s := c.shard(k)
	s.mu.Lock()
	if e, ok := s.m[k.H1]; ok && e.h2 == k.H2 {
		delete(s.m, k.H1)
		c.size.Add(-1)
	}
	s.mu.Unlock()
}

// seriesDeleted counts series the head deleted and empties the cache once
// they could make up half of it.
func (c *refCache) seriesDeleted(n int) {
	if c.deleted.Add(int64(n)) < c.size.Load()/2+1024 {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		c.size.Add(-int64(len(s.m)))
		clear(s.m)
		s.mu.Unlock()
	}
	c.deleted.Store(0)
}
