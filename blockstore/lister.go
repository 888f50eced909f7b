package blockstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Lister keeps the metas of every tenant's queryable blocks (complete and
// not marked for deletion), refreshed from the bucket at most every sync
// interval: what a querier that reads blocks through store-gateways needs
// to know which blocks a query must be answered from, without their
// indexes. Each block's meta.json is read once.
type Lister struct {
	bkt      bucket.Reader
	interval time.Duration

	mu      sync.Mutex
	tenants map[string]*listedTenant
}

type listedTenant struct {
	lock   tenantLock // held during a refresh; guards the fields below
	metas  map[ulid.ULID]tsdb.BlockMeta
	synced time.Time
}

// NewLister returns a Lister over bkt (the per-tenant encrypting bucket)
// refreshing a tenant's list when it is older than interval.
func NewLister(bkt bucket.Reader, interval time.Duration) *Lister {
	return &Lister{bkt: bkt, interval: interval, tenants: map[string]*listedTenant{}}
}

// Blocks returns the metas of the tenant's queryable blocks overlapping
// [mint, maxt], oldest first. A tenant whose keys were deleted has none.
func (l *Lister) Blocks(ctx context.Context, tenant string, mint, maxt int64) ([]tsdb.BlockMeta, error) {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return nil, err
	}
	l.mu.Lock()
	t := l.tenants[tenant]
	if t == nil {
		t = &listedTenant{lock: newTenantLock(), metas: map[ulid.ULID]tsdb.BlockMeta{}}
		l.tenants[tenant] = t
	}
	l.mu.Unlock()
	if err := t.lock.acquire(ctx, tenant); err != nil {
		return nil, err
	}
	defer t.lock.release()
	if time.Since(t.synced) > l.interval {
		if err := l.refresh(ctx, tenant, t); err != nil {
			return nil, fmt.Errorf("list blocks of tenant %s: %w", tenant, err)
		}
		t.synced = time.Now()
	}
	var out []tsdb.BlockMeta
	for _, m := range t.metas {
		if m.MinTime <= maxt && m.MaxTime > mint {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b tsdb.BlockMeta) int {
		if c := a.MinTime - b.MinTime; c != 0 {
			return int(c)
		}
		return strings.Compare(a.ULID.String(), b.ULID.String())
	})
	return out, nil
}

func (l *Lister) refresh(ctx context.Context, tenant string, t *listedTenant) error {
	listed, err := listBlocks(ctx, l.bkt, tenant)
	if err != nil {
		return err
	}
	for id, lb := range listed {
		if _, ok := t.metas[id]; ok || !lb.complete || lb.marked {
			continue
		}
		m, err := ReadMeta(ctx, l.bkt, tenant, id)
		switch {
		case errors.Is(err, encryption.ErrTenantKeysDeleted):
			clear(t.metas)
			return nil
		case bucket.IsNotFound(err):
			continue // deleted since the listing
		case err != nil:
			return err
		}
		t.metas[id] = m
	}
	for id := range t.metas {
		if lb, ok := listed[id]; !ok || lb.marked {
			delete(t.metas, id)
		}
	}
	return nil
}

// Forget drops what the lister holds of a tenant (after deletion).
func (l *Lister) Forget(tenant string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.tenants, tenant)
}
