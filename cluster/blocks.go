package cluster

import (
	"hash/fnv"

	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
)

// The operations of the store-gateway ring, as Mimir defines them.
var (
	// BlocksOwnerSync is whether a store-gateway keeps a block loaded: it
	// does from the moment it joins until it left, so that no block is
	// unloaded on one before another has it.
	BlocksOwnerSync = ring.NewOp([]ring.InstanceState{ring.JOINING, ring.ACTIVE, ring.LEAVING}, nil)
	// BlocksRead is whom a querier asks for a block: ACTIVE store-gateways,
	// the set extended past one that is not.
	BlocksRead = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })
)

// BlockKey is a block's token in the store-gateway ring: the FNV-1a hash
// of its ULID's bytes, so that every process places it alike.
func BlockKey(id ulid.ULID) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(id[:])
	return h.Sum32()
}

// BlockOwners returns the store-gateways a querier may ask for a block:
// its replication set in the ring, healthy ACTIVE instances only.
func (r *RoleRing) BlockOwners(id ulid.ULID) (ring.ReplicationSet, error) {
	return r.ring.Get(BlockKey(id), BlocksRead, nil, nil, nil)
}

// OwnsBlock reports whether this store-gateway is among the owners of a
// block. An error of the ring (empty, or not enough healthy instances)
// counts as not owning it.
func (r *RoleRing) OwnsBlock(id ulid.ULID) bool {
	owns, _, err := r.Owns(BlockKey(id), BlocksOwnerSync)
	return err == nil && owns
}
