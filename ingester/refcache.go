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

type refShard struct {
	mu sync.RWMutex
	m  map[remotewrite.SeriesKey]storage.SeriesRef
}

func newRefCache() *refCache {
	c := &refCache{}
	for i := range c.shards {
		c.shards[i].m = map[remotewrite.SeriesKey]storage.SeriesRef{}
	}
	return c
}

func (c *refCache) shard(k remotewrite.SeriesKey) *refShard { return &c.shards[k.H1%refShards] }

func (c *refCache) get(k remotewrite.SeriesKey) (storage.SeriesRef, bool) {
	if k.IsZero() {
		return 0, false
	}
	s := c.shard(k)
	s.mu.RLock()
	ref, ok := s.m[k]
	s.mu.RUnlock()
	return ref, ok
}

func (c *refCache) put(k remotewrite.SeriesKey, ref storage.SeriesRef) {
	if k.IsZero() {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	if _, ok := s.m[k]; !ok {
		c.size.Add(1)
	}
	s.m[k] = ref
	s.mu.Unlock()
}

func (c *refCache) forget(k remotewrite.SeriesKey) {
	s := c.shard(k)
	s.mu.Lock()
	if _, ok := s.m[k]; ok {
		delete(s.m, k)
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
