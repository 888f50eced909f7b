package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/fluxpulse/fluxpulse/cluster"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/rpc"
	"github.com/fluxpulse/fluxpulse/ruler"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// shardingConfig is how rulers and compactors that run apart share their
// work over rings of their own (#17).
type shardingConfig struct {
	rulerRing     cluster.RoleRingConfig
	compactorRing cluster.RoleRingConfig
	leaseFor      time.Duration
	rulerStable   time.Duration
}

func (c *shardingConfig) registerFlags(fs *flag.FlagSet) {
	c.rulerRing.RegisterFlagsWithPrefix(fs, "ruler.ring", "ruler", 1)
	fs.DurationVar(&c.rulerStable, "ruler.ring.stable-period", 10*time.Second, "With rulers apart: how long the ruler ring must stay unchanged before a ruler takes a rule group from a ruler that is still alive (a join, a leave), so that the previous one has stopped it first; groups of a ruler whose heartbeat timed out move at once.")
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

// shardRuler makes the ruler evaluate only the groups it owns on the
// ruler ring, and answer the rules API for the others' groups too by
// asking them over gRPC.
func (p *process) shardRuler(rul *ruler.Ruler) error {
	sc := p.cfg.sharding
	rr, err := p.roleRing("ruler", "ruler.ring", sc.rulerRing, true)
	if err != nil {
		return err
	}
	if err := rul.SetRing(rulerRing{rr}, ruler.ShardingConfig{HeartbeatPeriod: sc.rulerRing.HeartbeatPeriod, StablePeriod: sc.rulerStable,
		CheckPeriod: 250 * time.Millisecond, Token: func(tenant, ns, group string) uint32 { return cluster.Token(tenant, ns, group) }}); err != nil {
		return err
	}
	ctls, err := p.cfg.cluster.clientTLS()
	if err != nil {
		return err
	}
	rul.SetPeers(&rulerPeers{rr: rr, cred: p.member.cred, tls: ctls, clients: map[string]*rpc.RulerClient{}})
	if err := p.grpcService(func(srv *grpc.Server) {
		rpc.RegisterRuler(srv, func(ctx context.Context, query string) ([]byte, error) {
			tenant, err := tenantauth.Tenant(ctx)
			if err != nil {
				return nil, err
			}
			return rul.OwnGroups(tenant, query)
		})
	}, rr.Active); err != nil {
		return err
	}
	p.checks = append(p.checks, func() string {
		if !rr.Active() {
			return "ruler is not ACTIVE in the ruler ring yet"
		}
		return ""
	})
	return nil
}

// rulerRing is the ruler ring as the ruler uses it.
type rulerRing struct{ rr *cluster.RoleRing }

func (r rulerRing) Owner(token uint32) (string, error) {
	d, err := r.rr.Owner(token, cluster.OwnerOp)
	return d.Id, err
}

func (r rulerRing) Instance(id string) (present, healthy bool, beat time.Time) {
	d, ok := r.rr.Instance(id)
	if !ok {
		return false, false, time.Time{}
	}
	return true, r.rr.Healthy(d, cluster.OwnerOp), time.Unix(d.Timestamp, 0)
}

func (r rulerRing) Shape() uint64      { return r.rr.Shape(cluster.OwnerOp) }
func (r rulerRing) InstanceID() string { return r.rr.InstanceID() }

// rulerPeers asks the other healthy rulers of the ring.
type rulerPeers struct {
	rr   *cluster.RoleRing
	cred rpc.Credential
	tls  *tls.Config

	mu      sync.Mutex
	clients map[string]*rpc.RulerClient
}

func (rp *rulerPeers) client(addr string) (*rpc.RulerClient, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if c := rp.clients[addr]; c != nil {
		return c, nil
	}
	c, err := rpc.DialRuler(addr, rp.cred, rp.tls)
	if err == nil {
		rp.clients[addr] = c
	}
	return c, err
}

// Groups implements ruler.Peers.
func (rp *rulerPeers) Groups(ctx context.Context, query string) ([][]byte, error) {
	set, err := rp.rr.Ring().GetAllHealthy(cluster.OwnerOp)
	if err != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	out := make([][]byte, len(set.Instances))
	errs := make([]error, len(set.Instances))
	for k, inst := range set.Instances {
		if inst.Id == rp.rr.InstanceID() {
			continue
		}
		wg.Go(func() {
			c, err := rp.client(inst.Addr)
			if err == nil {
				out[k], err = c.Groups(ctx, query)
			}
			if err != nil {
				errs[k] = fmt.Errorf("ruler %s: %w", inst.Id, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(b []byte) bool { return b == nil }), nil
}
