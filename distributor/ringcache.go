package distributor

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/ring"
)

// Ring is the ingester ring as the distributor writes to it: dskit's ring,
// the tokens of every instance in it (sorted), from which the replication
// sets of every key follow, and a tenant's shuffle shard of it.
type Ring interface {
	ring.DoBatchRing
	Tokens() []uint32
	ShuffleShard(identifier string, size int) ring.ReadRing
}

// setsTTL is how long the replication sets of the ring's token ranges are
// reused before they are read from the ring again: an instance that turns
// unhealthy is skipped that much later at most.
const setsTTL = time.Second

// ringSets memoizes the ring's replication sets per token range: every key
// between two adjacent tokens has the same set, and a ring of a few
// hundred tokens has as many sets, while a push asks for one per series
// (dskit's Get costs about a microsecond with zone awareness).
type ringSets struct {
	ring Ring
	now  func() time.Time

	mu   sync.Mutex
	snap atomic.Pointer[setsSnapshot]
}

type setsSnapshot struct {
	built  time.Time
	tokens []uint32
	sets   []atomic.Pointer[setEntry] // by token range: the index of the first token above the key

	// The instances of the sets built so far, each with its place here,
	// so that a push groups its series by instance with a slice index
	// rather than a map of addresses.
	mu    sync.Mutex
	index map[string]int
}

type setEntry struct {
	set ring.ReplicationSet
	err error
	at  []int // per instance of set: its place in the snapshot's index
}

// entry makes the entry of a set read from the ring.
func (s *setsSnapshot) entry(set ring.ReplicationSet, err error) *setEntry {
	e := &setEntry{set: set, err: err, at: make([]int, len(set.Instances))}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index == nil {
		s.index = map[string]int{}
	}
	for k, inst := range set.Instances {
		at, ok := s.index[inst.Addr]
		if !ok {
			at = len(s.index)
			s.index[inst.Addr] = at
		}
		e.at[k] = at
	}
	return e
}

// get returns the entry of key's replication set for writes.
func (s *setsSnapshot) get(rg Ring, key uint32) *setEntry {
	if len(s.tokens) == 0 {
		return s.entry(rg.Get(key, ring.WriteNoExtend, nil, nil, nil))
	}
	// As dskit searches: the first token above the key, wrapping around.
	i, found := slices.BinarySearch(s.tokens, key)
	if found {
		i++
	}
	if i == len(s.tokens) {
		i = 0
	}
	if e := s.sets[i].Load(); e != nil {
		return e
	}
	// Any key of the range does: the one just below its token, or for the
	// range that wraps around, the last token.
	rep := s.tokens[len(s.tokens)-1]
	if i > 0 {
		rep = s.tokens[i] - 1
	}
	e := s.entry(rg.Get(rep, ring.WriteNoExtend, nil, nil, nil))
	s.sets[i].Store(e)
	return e
}

func (r *ringSets) snapshot() *setsSnapshot {
	now := r.now()
	if s := r.snap.Load(); s != nil && now.Sub(s.built) < setsTTL {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.snap.Load(); s != nil && now.Sub(s.built) < setsTTL {
		return s
	}
	tokens := r.ring.Tokens()
	s := &setsSnapshot{built: now, tokens: tokens, sets: make([]atomic.Pointer[setEntry], len(tokens))}
	r.snap.Store(s)
	return s
}
