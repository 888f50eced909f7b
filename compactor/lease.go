package compactor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// Sharding spreads tenants over the compactors of a cluster
// (*cluster.RoleRing through cmd/fluxpulse). Owns must be cheap and safe
// for concurrent use: it is asked before every compaction.
type Sharding interface {
	// Owns reports whether this compactor owns the tenant on the ring.
	Owns(tenant string) bool
	// InstanceID names this compactor in the leases it writes.
	InstanceID() string
}

// ShardTenants makes the compactor work only on the tenants sh says it
// owns, each under a lease in the bucket (see lease) that lasts leaseFor.
// Call it before Run.
func (c *Compactor) ShardTenants(sh Sharding, leaseFor time.Duration) error {
	if leaseFor < time.Second {
		return fmt.Errorf("-%s must be at least 1s, got %s", FlagLeaseDuration, leaseFor)
	}
	c.shard, c.held = sh, map[string]*heldLease{}
	c.leases = &leases{bkt: c.raw, owner: sh.InstanceID(), dur: leaseFor, now: time.Now, seen: map[string]seenLease{}}
	return nil
}

// FlagLeaseDuration names the lease's flag in errors.
const FlagLeaseDuration = "compactor.tenant-lease-duration"

// DelayEachPass makes every pass of a sharded compactor over a tenant
// wait d after it took the tenant's lease, before its first compaction: a
// slow compaction, as fault injection for tests that provoke a ring change
// while a compactor works on a tenant.
func (c *Compactor) DelayEachPass(d time.Duration) { c.delay = d }

// leasePrefix holds one lease object per tenant. '~' is no character of
// tenant IDs, so no tenant's listing sees it.
const leasePrefix = "~compactor/leases/"

// ErrLeased is wrapped by the error for a tenant another compactor holds
// (or may hold: a race lost, a write too slow to be safe).
var ErrLeased = errors.New("the tenant is leased by another compactor")

// leases takes and keeps per-tenant leases: objects in the raw bucket that
// name their holder and change at every renewal.
//
// The bucket has no compare-and-swap, so a lease is taken as in Fischer's
// timed mutual exclusion: read, write within maxWrite of the read, wait
// settle (longer than maxWrite), read back. Of two compactors that both
// saw the lease free, the later writer wrote less than maxWrite after its
// read, which came before the earlier one's write; so the earlier writer's
// read-back, settle after its write, sees the later lease and backs off,
// and at most one proceeds. A write that took longer than maxWrite is not
// trusted: that round is given up.
//
// A lease that another compactor holds is free only once its content has
// not changed for dur as this process observes it (its own clock only, so
// clock skew between machines does not matter). The holder renews every
// dur/4 and stops working (its context is cancelled) once dur/2 has passed
// since the start of its last successful renewal: long before anyone can
// see the lease unchanged for dur. A lease written by this instance's ID
// in an earlier life of the process is free at once.
type leases struct {
	bkt   bucket.Bucket
	owner string
	dur   time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]seenLease // what other holders' leases held when first seen
}

type seenLease struct {
	content []byte
	since   time.Time
}

// leaseContent is what a lease object holds.
type leaseContent struct {
	Owner    string    `json:"owner"`
	Nonce    string    `json:"nonce"`
	Renewed  time.Time `json:"renewed"` // for people reading the bucket; nobody compares it
	ValidFor string    `json:"valid_for"`
}

// maxWrite bounds the time from reading a free lease to having written
// one's own (3s for the default 2m); settle, twice that, is what a take
// waits before reading its lease back. Both are paid once per tenant and
// change of owner: a compactor keeps its leases while it owns the tenants.
func (l *leases) maxWrite() time.Duration { return max(l.dur/40, 100*time.Millisecond) }
func (l *leases) settle() time.Duration   { return 2 * l.maxWrite() }

func leaseName(tenant string) string { return leasePrefix + tenant + ".json" }

// read returns the lease object's content, nil when there is none.
func (l *leases) read(ctx context.Context, tenant string) ([]byte, error) {
	r, err := l.bkt.Get(ctx, leaseName(tenant))
	if bucket.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 4096))
}

// write writes a fresh lease of this compactor and returns its content.
func (l *leases) write(ctx context.Context, tenant string) ([]byte, error) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	b, err := json.Marshal(leaseContent{Owner: l.owner, Nonce: hex.EncodeToString(nonce[:]), Renewed: l.now().UTC(), ValidFor: l.dur.String()})
	if err != nil {
		return nil, err
	}
	return b, l.bkt.Upload(ctx, leaseName(tenant), bytes.NewReader(b))
}

// free reports whether a lease content cur lets this compactor take the
// tenant now.
func (l *leases) free(tenant string, cur []byte) (bool, string) {
	if cur == nil {
		return true, ""
	}
	var lc leaseContent
	if err := json.Unmarshal(cur, &lc); err == nil && lc.Owner == l.owner {
		return true, ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.seen[tenant]
	if !ok || !bytes.Equal(s.content, cur) {
		s = seenLease{content: bytes.Clone(cur), since: l.now()}
		l.seen[tenant] = s
	}
	return l.now().Sub(s.since) >= l.dur, lc.Owner
}

// lease is one held lease; ctx is cancelled when it may have expired.
type lease struct {
	l       *leases
	tenant  string
	content []byte
	valid   time.Time // when this holder must have stopped
	cancel  context.CancelFunc
	done    chan struct{}
}

// take takes the tenant's lease, or fails with ErrLeased; the returned
// context ends when the lease may be lost. Call release when done.
func (l *leases) take(ctx context.Context, tenant string) (*lease, context.Context, error) {
	start := l.now()
	cur, err := l.read(ctx, tenant)
	if err != nil {
		return nil, nil, fmt.Errorf("read the lease of %s: %w", tenant, err)
	}
	if ok, holder := l.free(tenant, cur); !ok {
		return nil, nil, fmt.Errorf("%w (%s)", ErrLeased, holder)
	}
	mine, err := l.write(ctx, tenant)
	if err != nil {
		return nil, nil, fmt.Errorf("write the lease of %s: %w", tenant, err)
	}
	if d := l.now().Sub(start); d > l.maxWrite() {
		return nil, nil, fmt.Errorf("%w: reading and writing the lease took %s, more than the %s that make it safe", ErrLeased, d, l.maxWrite())
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(l.settle()):
	}
	back, err := l.read(ctx, tenant)
	if err != nil {
		return nil, nil, fmt.Errorf("read the lease of %s back: %w", tenant, err)
	}
	if !bytes.Equal(back, mine) {
		return nil, nil, fmt.Errorf("%w: another compactor wrote it at the same time", ErrLeased)
	}
	wctx, cancel := context.WithCancel(ctx)
	ls := &lease{l: l, tenant: tenant, content: mine, valid: start.Add(l.dur / 2), cancel: cancel, done: make(chan struct{})}
	go ls.keep(wctx)
	return ls, wctx, nil
}

// keep renews the lease every dur/4 and cancels the work once the lease
// may have been lost: a renewal found another's content, or none
// succeeded for dur/2.
func (ls *lease) keep(ctx context.Context) {
	defer close(ls.done)
	l := ls.l
	tick := time.NewTicker(l.dur / 8)
	defer tick.Stop()
	last := l.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if l.now().After(ls.valid) {
			ls.cancel()
			return
		}
		if l.now().Sub(last) < l.dur/4 {
			continue
		}
		start := l.now()
		cur, err := l.read(ctx, ls.tenant)
		if err != nil {
			continue // try again at the next tick, while valid
		}
		if !bytes.Equal(cur, ls.content) {
			ls.cancel() // someone else holds it now
			return
		}
		next, err := l.write(ctx, ls.tenant)
		if err != nil {
			continue
		}
		if l.now().Sub(start) > l.maxWrite() {
			ls.cancel() // a slow write may have replaced another's lease: stop to be safe
			return
		}
		ls.content, ls.valid, last = next, start.Add(l.dur/2), start
	}
}

// release stops renewing and deletes the lease if it is still this
// compactor's.
func (ls *lease) release() {
	ls.cancel()
	<-ls.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cur, err := ls.l.read(ctx, ls.tenant); err == nil && bytes.Equal(cur, ls.content) {
		_ = ls.l.bkt.Delete(ctx, leaseName(ls.tenant))
	}
}

// heldLease is a tenant's lease this compactor holds between passes.
type heldLease struct {
	ls  *lease
	ctx context.Context // ends when the lease may be lost
}

// passTenant makes one pass over a tenant this compactor owns, under its
// lease (taken at the first pass, kept while the compactor owns the
// tenant); without sharding it is CompactTenant. It returns how many
// compactions it left for later.
func (c *Compactor) passTenant(ctx context.Context, tenant string) (int, error) {
	if c.shard == nil {
		return c.CompactTenant(ctx, tenant)
	}
	if !c.shard.Owns(tenant) {
		c.releaseLease(tenant)
		return 0, nil
	}
	h := c.held[tenant]
	if h == nil || h.ctx.Err() != nil {
		c.releaseLease(tenant)
		ls, wctx, err := c.leases.take(ctx, tenant)
		if errors.Is(err, ErrLeased) {
			c.leaseOutcomes.WithLabelValues("held").Inc()
			c.logger.Info("tenant skipped this pass", "tenant", tenant, "reason", err)
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		c.leaseOutcomes.WithLabelValues("taken").Inc()
		h = &heldLease{ls: ls, ctx: wctx}
		c.held[tenant] = h
	}
	c.logger.Info("tenant pass started", "tenant", tenant, "instance", c.shard.InstanceID())
	if c.delay > 0 {
		select {
		case <-h.ctx.Done():
		case <-time.After(c.delay):
		}
	}
	left, err := c.CompactTenant(h.ctx, tenant)
	lost := h.ctx.Err() != nil && ctx.Err() == nil
	c.logger.Info("tenant pass finished", "tenant", tenant, "instance", c.shard.InstanceID(), "left", left, "lease_lost", lost)
	if lost || !c.shard.Owns(tenant) {
		c.releaseLease(tenant)
	}
	if lost {
		c.leaseOutcomes.WithLabelValues("lost").Inc()
		return left, fmt.Errorf("the lease of %s was lost during the pass; it stopped", tenant)
	}
	return left, err
}

// releaseLease gives up the tenant's lease if this compactor holds it.
func (c *Compactor) releaseLease(tenant string) {
	if h := c.held[tenant]; h != nil {
		h.ls.release()
		delete(c.held, tenant)
	}
}

// releaseLeases gives up the leases of tenants not in keep (nil: all).
func (c *Compactor) releaseLeases(keep []string) {
	for tenant := range c.held {
		if !slices.Contains(keep, tenant) {
			c.releaseLease(tenant)
		}
	}
}

// stillOwned reports whether a pass over tenant may go on: with sharding,
// while this compactor owns it on the ring (a pass stops early when the
// ring moves the tenant; the lease keeps the new owner out until then).
func (c *Compactor) stillOwned(tenant string) bool {
	return c.shard == nil || c.shard.Owns(tenant)
}
