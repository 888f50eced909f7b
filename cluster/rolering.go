package cluster

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
)

// RoleRingConfig configures the ring of one role other than the ingesters
// (rulers, compactors, store-gateways): how it is read, and how this
// process registers in it when it runs the role.
type RoleRingConfig struct {
	ReplicationFactor int
	ZoneAwareness     bool
	Zone              string
	InstanceID        string
	InstanceAddr      string
	HeartbeatPeriod   time.Duration
	HeartbeatTimeout  time.Duration
	NumTokens         int
	TokensFile        string // empty: tokens are not kept across restarts
}

// RegisterFlagsWithPrefix registers the ring's flags as -<prefix>.… (Mimir's
// names: ruler.ring, compactor.ring, store-gateway.sharding-ring), with the
// replication factor given (1 for rings that place each item once).
func (c *RoleRingConfig) RegisterFlagsWithPrefix(fs *flag.FlagSet, prefix, role string, replication int) {
	host, _ := os.Hostname()
	if replication > 1 {
		fs.IntVar(&c.ReplicationFactor, prefix+".replication-factor", replication, "Number of "+role+"s that own each item.")
		fs.BoolVar(&c.ZoneAwareness, prefix+".zone-awareness-enabled", false, "Place the replicas of each item on "+role+"s of different availability zones.")
	} else {
		c.ReplicationFactor = 1
	}
	fs.StringVar(&c.Zone, prefix+".instance-availability-zone", "", "Availability zone of this "+role+".")
	fs.StringVar(&c.InstanceID, prefix+".instance-id", host, "This "+role+"'s ID in its ring; it keeps the ID across restarts.")
	fs.StringVar(&c.InstanceAddr, prefix+".instance-addr", "", "Address (host:port) other processes dial for this "+role+"'s gRPC service (default: from -server.grpc-listen-address, as for ingesters).")
	fs.DurationVar(&c.HeartbeatPeriod, prefix+".heartbeat-period", 15*time.Second, "How often a "+role+" updates its heartbeat in its ring.")
	fs.DurationVar(&c.HeartbeatTimeout, prefix+".heartbeat-timeout", time.Minute, "A "+role+" whose heartbeat is older than this is unhealthy, and what it owned moves to others. After ten times this it is forgotten.")
	fs.IntVar(&c.NumTokens, prefix+".num-tokens", 128, "Tokens a "+role+" owns in its ring.")
}

// Validate checks the ring configuration; prefix names its flags.
func (c RoleRingConfig) validate(prefix string) error {
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("-%s.replication-factor must be at least 1, got %d", prefix, c.ReplicationFactor)
	}
	if c.HeartbeatPeriod <= 0 || c.HeartbeatTimeout <= c.HeartbeatPeriod {
		return fmt.Errorf("-%[1]s.heartbeat-timeout (%[2]s) must be longer than -%[1]s.heartbeat-period (%[3]s)", prefix, c.HeartbeatTimeout, c.HeartbeatPeriod)
	}
	if c.NumTokens < 1 {
		return fmt.Errorf("-%s.num-tokens must be at least 1", prefix)
	}
	return nil
}

// RoleRing is the ring of one role, gossiped in the same memberlist KV
// store as the ingester ring under a key of its own, and, when this process
// runs the role, the lifecycler that keeps this instance in it (ACTIVE as
// soon as it joins; dskit's heartbeats, auto-forget and tokens file).
type RoleRing struct {
	name   string
	prefix string
	cfg    RoleRingConfig
	ring   *ring.Ring
	lc     *ring.BasicLifecycler // nil: this process only reads the ring
}

// AddRing adds the ring of a role (name is its ring name and KV key; prefix
// the prefix of its flags, for errors). With addr set this process
// registers in it at addr (what others dial). Call it before Run.
func (n *Node) AddRing(name, prefix string, cfg RoleRingConfig, addr string) (*RoleRing, error) {
	if err := cfg.validate(prefix); err != nil {
		return nil, err
	}
	if n.rings[name] != nil {
		return nil, fmt.Errorf("ring %s added twice", name)
	}
	rcfg := ring.Config{HeartbeatTimeout: cfg.HeartbeatTimeout, ReplicationFactor: cfg.ReplicationFactor, ZoneAwarenessEnabled: cfg.ZoneAwareness}
	rr := &RoleRing{name: name, prefix: prefix, cfg: cfg}
	var err error
	// As in Mimir's store-gateway: a read of a role's ring takes the
	// healthy instances of an item's set, however few, and Owner walks
	// past unhealthy ones; nothing needs a quorum of them.
	rr.ring, err = ring.NewWithStoreClientAndStrategy(rcfg, name, name, n.ringKV, ring.NewIgnoreUnhealthyInstancesReplicationStrategy(),
		prometheus.WrapRegistererWithPrefix("fluxpulse_dskit_", n.reg), n.logger)
	if err != nil {
		return nil, fmt.Errorf("%s ring: %w", name, err)
	}
	if addr != "" {
		if cfg.InstanceID == "" {
			return nil, fmt.Errorf("-%s.instance-id is empty and the hostname is unknown: set it", prefix)
		}
		if cfg.ZoneAwareness && cfg.Zone == "" {
			return nil, fmt.Errorf("zone awareness is enabled: set -%s.instance-availability-zone", prefix)
		}
		if rr.lc, err = n.newLifecycler(name, name, cfg, addr, false); err != nil {
			return nil, err
		}
	}
	if n.rings == nil {
		n.rings = map[string]*RoleRing{}
	}
	n.rings[name] = rr
	n.ringOrder = append(n.ringOrder, rr)
	return rr, nil
}

// Ring is the role's ring, as dskit reads it.
func (r *RoleRing) Ring() *ring.Ring { return r.ring }

// InstanceID is this process's ID in the ring; empty when it only reads it.
func (r *RoleRing) InstanceID() string {
	if r.lc == nil {
		return ""
	}
	return r.lc.GetInstanceID()
}

// InstanceAddr is the address this process registered at; empty when it
// only reads the ring.
func (r *RoleRing) InstanceAddr() string {
	if r.lc == nil {
		return ""
	}
	return r.lc.GetInstanceAddr()
}

// Owns reports whether this instance is among the owners of key (its
// replication set for op, healthy instances only), and the set's instances.
func (r *RoleRing) Owns(key uint32, op ring.Operation) (bool, ring.ReplicationSet, error) {
	set, err := r.ring.Get(key, op, nil, nil, nil)
	if err != nil {
		return false, set, err
	}
	return r.lc != nil && set.Includes(r.lc.GetInstanceAddr()), set, nil
}

// Active reports whether this instance is ACTIVE in the ring as this
// process reads it (always false when it only reads the ring).
func (r *RoleRing) Active() bool {
	if r.lc == nil || r.lc.GetState() != ring.ACTIVE {
		return false
	}
	st, err := r.ring.GetInstanceState(r.lc.GetInstanceID())
	return err == nil && st == ring.ACTIVE
}

// Page serves dskit's status page of the ring.
func (r *RoleRing) Page() http.Handler { return r.ring }

// start starts the ring and the lifecycler; the returned function stops
// them in the opposite order.
func (r *RoleRing) start(n *Node) (stop func(), err error) {
	ctx := context.Background()
	if err := services.StartAndAwaitRunning(ctx, r.ring); err != nil {
		return nil, fmt.Errorf("%s ring: %w", r.name, err)
	}
	if r.lc == nil {
		return func() { n.stop(r.name+" ring", r.ring) }, nil
	}
	if err := services.StartAndAwaitRunning(ctx, r.lc); err != nil {
		n.stop(r.name+" ring", r.ring)
		return nil, fmt.Errorf("register in the %s ring: %w", r.name, err)
	}
	return func() { n.stop(r.name+" lifecycler", r.lc); n.stop(r.name+" ring", r.ring) }, nil
}

// startRings starts every role ring; the returned function stops them.
func (n *Node) startRings() (func(), error) {
	var stops []func()
	stopAll := func() {
		for k := len(stops) - 1; k >= 0; k-- {
			stops[k]()
		}
	}
	for _, r := range n.ringOrder {
		stop, err := r.start(n)
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, stop)
	}
	return stopAll, nil
}
