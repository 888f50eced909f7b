package ingester

import (
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// refCache maps the labels of a series, as a request sends them, to the
// series' reference in the tenant's head and its stored labels. A series
// found here was validated and created before: its samples skip validation,
// label building and the head's hash lookup. A hit is always confirmed by
// comparing the labels themselves, so a hash collision can only cost a miss.
//
// Entries are dropped when the head deletes their series; a reference that
// went stale in between is harmless, the head then looks the labels up.
type refCache struct {
	shards [refShards]refShard
}

const refShards = 64

type refShard struct {
	mu sync.RWMutex
	m  map[uint64][]refEntry // usually one entry; more on a hash collision
}

type refEntry struct {
	ref storage.SeriesRef
	ls  labels.Labels // shares its bytes with the head's copy
}

func newRefCache() *refCache {
	c := &refCache{}
	for i := range c.shards {
		c.shards[i].m = map[uint64][]refEntry{}
	}
	return c
}

var sep = []byte{0xff}

// hashRaw hashes labels as a request sends them.
func hashRaw(ls []labels.Label) uint64 {
	var d xxhash.Digest
	d.Reset()
	for _, l := range ls {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
	}
	return d.Sum64()
}

// hashStored hashes stored labels the way hashRaw hashes the same labels.
func hashStored(ls labels.Labels) uint64 {
	var d xxhash.Digest
	d.Reset()
	ls.Range(func(l labels.Label) {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
	})
	return d.Sum64()
}

// equalRaw reports whether stored holds exactly the labels of raw, in order.
func equalRaw(stored labels.Labels, raw []labels.Label) bool {
	if stored.Len() != len(raw) {
		return false
	}
	i, eq := 0, true
	stored.Range(func(l labels.Label) {
		if eq && (l.Name != raw[i].Name || l.Value != raw[i].Value) {
			eq = false
		}
		i++
	})
	return eq
}

func (c *refCache) get(h uint64, raw []labels.Label) (storage.SeriesRef, labels.Labels, bool) {
	s := &c.shards[h%refShards]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.m[h] {
		if equalRaw(e.ls, raw) {
			return e.ref, e.ls, true
		}
	}
	return 0, labels.EmptyLabels(), false
}

func (c *refCache) put(h uint64, ref storage.SeriesRef, ls labels.Labels) {
	s := &c.shards[h%refShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.m[h]
	for i := range es {
		if labels.Equal(es[i].ls, ls) {
			es[i].ref = ref
			return
		}
	}
	s.m[h] = append(es, refEntry{ref: ref, ls: ls})
}

// drop forgets series the head deleted.
func (c *refCache) drop(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	for ref, ls := range deleted {
		h := hashStored(ls)
		s := &c.shards[h%refShards]
		s.mu.Lock()
		es := s.m[h]
		for i := 0; i < len(es); i++ {
			if es[i].ref == storage.SeriesRef(ref) {
				es = append(es[:i], es[i+1:]...)
				i--
			}
		}
		if len(es) == 0 {
			delete(s.m, h)
		} else {
			s.m[h] = es
		}
		s.mu.Unlock()
	}
}
