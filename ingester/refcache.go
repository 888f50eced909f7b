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

// sortByShard sorts the series of idx (every series when idx is nil) by
// the shard of their keys into byShard (a counting sort) and returns where
// each shard's part of byShard starts.
func sortByShard(series []remotewrite.Series, idx, byShard []int32) (start [refShards + 1]int32) {
	n := len(series)
	if idx != nil {
		n = len(idx)
	}
	at := func(j int) int32 {
		if idx != nil {
			return idx[j]
		}
		return int32(j)
	}
	for j := range n {
		start[series[at(j)].Key.H2%refShards+1]++
	}
	for k := 1; k <= refShards; k++ {
		start[k] += start[k-1]
	}
	next := start
	for j := range n {
		i := at(j)
		k := series[i].Key.H2 % refShards
		byShard[next[k]] = i
		next[k]++
	}
	return start
}

// getAll looks up the keys of every series of a request at once, setting
// refs[i] to the reference of series[i] or 0 when it is not cached. The
// series are taken shard by shard (byShard is scratch of len(series)), so
// that each shard's lock is taken once per request rather than once per
// series, and its lookups run back to back: a locked instruction between
// two lookups would keep the CPU from overlapping their cache misses, which
// at 100,000 series are most of a lookup's cost (#18).
func (c *refCache) getAll(series []remotewrite.Series, refs []storage.SeriesRef, byShard []int32) {
	start := sortByShard(series, nil, byShard)
	for k := range c.shards {
		idx := byShard[start[k]:start[k+1]]
		if len(idx) == 0 {
			continue
		}
		s := &c.shards[k]
		s.mu.RLock()
		for _, i := range idx {
			key := series[i].Key
			e, ok := s.m[key.H1]
			if ok && e.h2 == key.H2 && !key.IsZero() {
				refs[i] = e.ref
			} else {
				refs[i] = 0
			}
		}
		s.mu.RUnlock()
	}
}

// putAll caches refs[i] for the key of series[i], for each i in idx, shard
// by shard as getAll looks them up (byShard is scratch of len(idx)).
func (c *refCache) putAll(series []remotewrite.Series, refs []storage.SeriesRef, idx, byShard []int32) {
	start := sortByShard(series, idx, byShard)
	for k := range c.shards {
		in := byShard[start[k]:start[k+1]]
		if len(in) == 0 {
			continue
		}
		s := &c.shards[k]
		added := 0
		s.mu.Lock()
		for _, i := range in {
			key := series[i].Key
			if key.IsZero() {
				continue
			}
			if _, ok := s.m[key.H1]; !ok {
				added++
			}
			s.m[key.H1] = refEntry{ref: refs[i], h2: key.H2}
		}
		s.mu.Unlock()
		c.size.Add(int64(added))
	}
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
