package ruler

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/rules"
)

// Ring is the ruler ring as the ruler uses it (*cluster.RoleRing through
// cmd/fluxpulse). Every method must be cheap and safe for concurrent use.
type Ring interface {
	// Owner returns the ID of the ruler that owns token: the first
	// healthy ACTIVE ruler clockwise from it.
	Owner(token uint32) (string, error)
	// Instance reports whether ruler id is in the ring, whether it is
	// healthy, and its last heartbeat.
	Instance(id string) (present, healthy bool, heartbeat time.Time)
	// Shape changes whenever the owner of some token may have changed.
	Shape() uint64
	// InstanceID is this ruler's ID.
	InstanceID() string
}

// ShardingConfig is how a ruler shares groups with the others of its ring.
type ShardingConfig struct {
	// HeartbeatPeriod is the ring's: how late the last heartbeat of a
	// dead ruler may be before it died.
	HeartbeatPeriod time.Duration
	// StablePeriod is how long the ring must stay unchanged before a ruler
	// takes a group whose previous owner is alive (or unknown): longer
	// than the ring's changes take to reach every ruler plus CheckPeriod.
	StablePeriod time.Duration
	// CheckPeriod is how often the ring is read for changes of ownership.
	CheckPeriod time.Duration
	// Token is the ring token of a group.
	Token func(tenant, namespace, group string) uint32
}

// groupKey names a group across tenants.
type groupKey struct{ tenant, namespace, group string }

// ownership is which groups this ruler evaluates now, and how it took
// them. The watcher goroutine changes it; evaluations and notifications
// read it.
type ownership struct {
	ring Ring
	cfg  ShardingConfig

	mu        sync.RWMutex
	owned     map[groupKey]ownedGroup
	lastOwner map[groupKey]string   // owner when not this ruler, as last seen
	known     map[string][]groupKey // every stored group, by tenant
	shape     uint64
	since     time.Time // when shape was first seen
	dirty     bool      // known changed since the last check
	waiting   bool      // a group this ruler owns waits to be taken
}

// ownedGroup is a group this ruler evaluates.
type ownedGroup struct {
	since time.Time // when this ruler took it
	// quietUntil: alerts active before since are not sent to Alertmanager
	// before it, as the previous owner may have sent them within a resend
	// delay before since.
	quietUntil time.Time
}

func newOwnership(ring Ring, cfg ShardingConfig) *ownership {
	return &ownership{ring: ring, cfg: cfg, owned: map[groupKey]ownedGroup{}, lastOwner: map[groupKey]string{}, known: map[string][]groupKey{}}
}

// SetRing makes the ruler evaluate only the groups it owns on ring. Call
// it before Run.
func (r *Ruler) SetRing(ring Ring, cfg ShardingConfig) error {
	if cfg.StablePeriod <= 0 || cfg.CheckPeriod <= 0 || cfg.HeartbeatPeriod <= 0 || cfg.Token == nil {
		return fmt.Errorf("ruler sharding: the stable period, check period, heartbeat period and token function must be set")
	}
	r.own = newOwnership(ring, cfg)
	return nil
}

// Evaluator is the instance ID of this ruler in its ring; empty when the
// ruler is not sharded.
func (r *Ruler) Evaluator() string {
	if r.own == nil {
		return ""
	}
	return r.own.ring.InstanceID()
}

// setKnown records the stored groups of a tenant (nil: none).
func (o *ownership) setKnown(tenant string, stored []storedGroup) {
	keys := make([]groupKey, len(stored))
	for k, sg := range stored {
		keys[k] = groupKey{tenant, sg.Namespace, sg.Group}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dirty = true
	if len(keys) == 0 {
		delete(o.known, tenant)
		return
	}
	o.known[tenant] = keys
}

// owns reports whether this ruler evaluates the group now.
func (o *ownership) owns(k groupKey) (ownedGroup, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	g, ok := o.owned[k]
	return g, ok
}

// check reads the ring once and updates which groups this ruler owns. A
// group another ruler owns now is dropped at once. A group this ruler
// owns now is taken when its previous owner is unhealthy (it stopped
// heartbeating: dead, so it evaluates nothing), or else once the ring has
// been unchanged for the stable period (the previous owner, alive, has
// seen the change by then and stopped). It returns the tenants whose
// groups changed hands.
func (o *ownership) check(now time.Time, resendDelay time.Duration) []string {
	self := o.ring.InstanceID()
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.ring.Shape()
	if s == o.shape && !o.dirty && !o.waiting {
		return nil // nothing can have changed hands
	}
	if s != o.shape {
		o.shape, o.since = s, now
	}
	o.dirty, o.waiting = false, false
	stable := now.Sub(o.since) >= o.cfg.StablePeriod
	var changed []string
	for tenant, keys := range o.known {
		moved := false
		for _, k := range keys {
			owner, err := o.ring.Owner(o.cfg.Token(k.tenant, k.namespace, k.group))
			_, mine := o.owned[k]
			switch {
			case err != nil || owner != self:
				if err == nil {
					o.lastOwner[k] = owner
				}
				if mine {
					delete(o.owned, k)
					moved = true
				}
			case !mine:
				g, ok := o.take(k, now, stable, resendDelay)
				if !ok {
					o.waiting = true
					continue
				}
				o.owned[k] = g
				delete(o.lastOwner, k)
				moved = true
			}
		}
		if moved {
			changed = append(changed, tenant)
		}
	}
	for k := range o.owned {
		if !slices.Contains(o.known[k.tenant], k) {
			delete(o.owned, k)
		}
	}
	slices.Sort(changed)
	return changed
}

// take decides whether this ruler may take a group it owns on the ring.
func (o *ownership) take(k groupKey, now time.Time, stable bool, resendDelay time.Duration) (ownedGroup, bool) {
	if prev := o.lastOwner[k]; prev != "" {
		present, healthy, beat := o.ring.Instance(prev)
		if present && !healthy {
			// Dead: its last notification went out before its next
			// heartbeat was due (a second more for the heartbeat's
			// resolution).
			return ownedGroup{since: now, quietUntil: beat.Add(o.cfg.HeartbeatPeriod + time.Second + resendDelay)}, true
		}
	}
	if !stable {
		return ownedGroup{}, false
	}
	return ownedGroup{since: now, quietUntil: now.Add(resendDelay)}, true
}

// quietAll restarts the quiet time of every group this ruler owns of a
// tenant (its rules manager was replaced: each restored alert would be
// sent again at once).
func (o *ownership) quietAll(tenant string, now time.Time, resendDelay time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, g := range o.owned {
		if k.tenant == tenant {
			g.since, g.quietUntil = now, now.Add(resendDelay)
			o.owned[k] = g
		}
	}
}

// watch checks the ring every check period until ctx ends, and tells
// changed about tenants whose groups changed hands.
func (o *ownership) watch(ctx context.Context, resendDelay time.Duration, changed func(tenant string)) {
	tick := time.NewTicker(o.cfg.CheckPeriod)
	defer tick.Stop()
	for {
		for _, t := range o.check(time.Now(), resendDelay) {
			changed(t)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// groupCtxKey carries the group of an evaluation to its notifications.
type groupCtxKey struct{}

// evalIteration evaluates a group only while this ruler owns it: a group
// the ring moved elsewhere stops at its next iteration, before its rules
// manager is updated.
func (r *Ruler) evalIteration(tenant string) rules.GroupEvalIterationFunc {
	return func(ctx context.Context, g *rules.Group, ts time.Time) {
		if r.own != nil {
			k := groupKey{tenant, g.File(), g.Name()}
			if _, ok := r.own.owns(k); !ok {
				return
			}
			ctx = context.WithValue(ctx, groupCtxKey{}, k)
		}
		rules.DefaultEvalIterationFunc(ctx, g, ts)
	}
}

// quiet drops from alerts about to be sent those that the group's
// previous owner may have sent less than a resend delay ago: firing,
// active since before this ruler took the group, within its quiet time.
// They count as sent, so they go out again a resend delay later; an
// Alertmanager keeps them firing meanwhile (their end is four resend
// delays after the last send).
func (r *Ruler) quiet(ctx context.Context, alerts []*rules.Alert) []*rules.Alert {
	if r.own == nil {
		return alerts
	}
	k, ok := ctx.Value(groupCtxKey{}).(groupKey)
	if !ok {
		return alerts
	}
	g, ok := r.own.owns(k)
	if !ok || !time.Now().Before(g.quietUntil) {
		return alerts
	}
	return slices.DeleteFunc(alerts, func(a *rules.Alert) bool {
		if a.State == rules.StateFiring && a.ResolvedAt.IsZero() && a.ActiveAt.Before(g.since) {
			r.m.quieted.Inc()
			return true
		}
		return false
	})
}
