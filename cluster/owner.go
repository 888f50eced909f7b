package cluster

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"time"

	"github.com/grafana/dskit/ring"
)

// Token is the ring token of an item named by parts (a tenant; a tenant,
// namespace and group): FNV-1a over the parts, each followed by a zero
// byte, so that ("ab", "c") and ("a", "bc") differ.
func Token(parts ...string) uint32 {
	h := fnv.New32a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum32()
}

// OwnerOp is the ring operation of items owned by one instance at a time:
// only ACTIVE instances own, and the walk goes past any other.
var OwnerOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })

// Owner returns the one instance that owns key: the first instance
// clockwise from key on the ring that is healthy for op (in a state op
// accepts, with a heartbeat younger than the ring's heartbeat timeout).
// An instance that dies is passed over once its heartbeat times out,
// without waiting for it to be forgotten.
func (r *RoleRing) Owner(key uint32, op ring.Operation) (ring.InstanceDesc, error) {
	n := r.ring.InstancesCount()
	if n == 0 {
		return ring.InstanceDesc{}, ring.ErrEmptyRing
	}
	set, err := r.ring.GetWithOptions(key, op, ring.WithReplicationFactor(max(n, r.cfg.ReplicationFactor)))
	if err != nil {
		return ring.InstanceDesc{}, err
	}
	return set.Instances[0], nil
}

// Instance returns what the ring holds of the instance id, and whether it
// holds it at all.
func (r *RoleRing) Instance(id string) (ring.InstanceDesc, bool) {
	d, err := r.ring.GetInstance(id)
	return d, err == nil
}

// Healthy reports whether an instance is healthy for op now.
func (r *RoleRing) Healthy(d ring.InstanceDesc, op ring.Operation) bool {
	return d.IsHealthy(op, r.cfg.HeartbeatTimeout, time.Now())
}

// HeartbeatPeriod and HeartbeatTimeout are the ring's.
func (r *RoleRing) HeartbeatPeriod() time.Duration  { return r.cfg.HeartbeatPeriod }
func (r *RoleRing) HeartbeatTimeout() time.Duration { return r.cfg.HeartbeatTimeout }

// Shape is a digest of who owns what on the ring as this process reads it
// now: the healthy instances for op, their states and tokens. It changes
// when an instance joins, leaves, changes state or turns healthy or
// unhealthy, not with every heartbeat.
func (r *RoleRing) Shape(op ring.Operation) uint64 {
	set, err := r.ring.GetAllHealthy(op)
	if err != nil {
		return 0
	}
	insts := slices.Clone(set.Instances)
	slices.SortFunc(insts, func(a, b ring.InstanceDesc) int {
		switch {
		case a.Id < b.Id:
			return -1
		case a.Id > b.Id:
			return 1
		}
		return 0
	})
	h := fnv.New64a()
	var b [4]byte
	for _, in := range insts {
		h.Write([]byte(in.Id))
		h.Write([]byte{0, byte(in.State)})
		for _, t := range in.Tokens {
			binary.LittleEndian.PutUint32(b[:], t)
			h.Write(b[:])
		}
	}
	return h.Sum64() | 1 // never 0, which means no ring
}
