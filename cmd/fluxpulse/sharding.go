package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/fluxpulse/fluxpulse/cluster"
	"github.com/fluxpulse/fluxpulse/compactor"
)

// shardingConfig is how rulers and compactors that run apart share their
// work over rings of their own (#17).
type shardingConfig struct {
	rulerRing     cluster.RoleRingConfig
	compactorRing cluster.RoleRingConfig
	leaseFor      time.Duration
}

func (c *shardingConfig) registerFlags(fs *flag.FlagSet) {
	c.rulerRing.RegisterFlagsWithPrefix(fs, "ruler.ring", "ruler", 1)
	c.compactorRing.RegisterFlagsWithPrefix(fs, "compactor.ring", "compactor", 1)
	fs.DurationVar(&c.leaseFor, compactor.FlagLeaseDuration, 2*time.Minute, "With compactors apart: how long a compactor's lease on a tenant (an object in the bucket, renewed every quarter of it) keeps other compactors off the tenant after its last renewal; a dead compactor's tenants wait this long, after its ring heartbeat timed out, before another takes them.")
}

// compactionDelayEnv makes every tenant pass of a compactor wait this long
// holding the tenant's lease: fault injection for tests, never for
// production.
const compactionDelayEnv = "FLUXPULSE_TEST_COMPACTION_DELAY"

// shardCompactor spreads tenants over the compactors of the ring.
func (p *process) shardCompactor(comp *compactor.Compactor) error {
	rr, err := p.roleRing("compactor", "compactor.ring", p.cfg.sharding.compactorRing, true)
	if err != nil {
		return err
	}
	if err := comp.ShardTenants(ringTenants{rr}, p.cfg.sharding.leaseFor); err != nil {
		return err
	}
	if v := os.Getenv(compactionDelayEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %w", compactionDelayEnv, err)
		}
		p.logger.Warn("every tenant pass is slowed down (fault injection for tests)", "env", compactionDelayEnv, "delay", d)
		comp.DelayEachPass(d)
	}
	p.checks = append(p.checks, func() string {
		if !rr.Active() {
			return "compactor is not ACTIVE in the compactor ring yet"
		}
		return ""
	})
	return nil
}

// ringTenants is a compactor's share of the tenants: those whose token's
// owner on the compactor ring it is.
type ringTenants struct{ rr *cluster.RoleRing }

func (r ringTenants) Owns(tenant string) bool {
	owner, err := r.rr.Owner(cluster.Token(tenant), cluster.OwnerOp)
	return err == nil && owner.Id == r.rr.InstanceID()
}

func (r ringTenants) InstanceID() string { return r.rr.InstanceID() }
