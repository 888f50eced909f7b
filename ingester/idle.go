package ingester

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Idle tenants. A tenant that sent nothing for -ingester.close-idle-tsdb-timeout
// costs the ingester nothing once its TSDB is closed: its head is cut into
// blocks and shipped, and once every block has been in the bucket for
// IdleCloseGrace (time for the queriers' block lists to see it), the TSDB is
// closed and its directory removed. Its data is read from the bucket from
// then on; its next push opens an empty TSDB, as for a new tenant.

// touch records a push now.
func (t *tenant) touch(now time.Time) { t.lastPush.Store(now.UnixNano()) }

// idleSince is how long the tenant has had no push.
func (t *tenant) idleSince(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, t.lastPush.Load()))
}

// drained reports whether the tenant's head is empty and every local block
// is shipped: closing the TSDB and removing its directory loses nothing.
func (t *tenant) drained() bool {
	n, _ := t.unshipped()
	return t.db.Head().NumSeries() == 0 && n == 0
}

// closeIdle cuts, ships and then closes the TSDBs of idle tenants; see
// above. It runs on the ship ticker.
func (i *Ingester) closeIdle(ctx context.Context, now time.Time) {
	if i.cfg.CloseIdleTimeout <= 0 || i.bkt == nil {
		return
	}
	var idle []*tenant
	i.eachTenant(func(t *tenant) {
		if t.idleSince(now) < i.cfg.CloseIdleTimeout {
			t.drainedAt = time.Time{}
			return
		}
		idle = append(idle, t)
	})
	// Cutting and shipping is mostly waiting for the disk and the bucket:
	// several tenants at once.
	var (
		mu  sync.Mutex
		due []*tenant
	)
	parallel(ctx, idle, max(4, i.cfg.ReopenParallel), func(t *tenant) {
		if !t.acquire() {
			return
		}
		defer t.release()
		if !t.drained() {
			t.drainedAt = time.Time{}
			if err := i.flush(t); err != nil {
				i.logger.Warn("cutting and shipping an idle tenant's head failed, will retry", "tenant", t.id, "err", err)
			}
		}
		switch {
		case !t.drained():
		case t.drainedAt.IsZero():
			t.drainedAt = now
		case now.Sub(t.drainedAt) >= i.cfg.IdleCloseGrace:
			mu.Lock()
			due = append(due, t)
			mu.Unlock()
		}
	})
	parallel(ctx, due, max(4, i.cfg.ReopenParallel), func(t *tenant) {
		if err := i.closeIdleTenant(t); err != nil {
			i.logger.Warn("closing an idle tenant's TSDB", "tenant", t.id, "err", err)
		}
	})
}

// parallel calls f for every tenant, n at a time, until ctx ends.
func parallel(ctx context.Context, ts []*tenant, n int, f func(*tenant)) {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, t := range ts {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(t)
		})
	}
	wg.Wait()
}

// closeIdleTenant closes t's TSDB and, unless a push reached it meanwhile,
// removes its directory. Pushes and queries that come while it closes wait
// for it, then find the tenant anew.
func (i *Ingester) closeIdleTenant(t *tenant) error {
	last := t.lastPush.Load()
	idle, owner := t.retire()
	if !owner { // being deleted, or the ingester is closing
		return nil
	}
	<-idle
	keep := t.lastPush.Load() != last || !t.drained()
	err := t.close()
	if !keep && err == nil {
		err = os.RemoveAll(t.dir)
	}
	i.forget(t)
	close(t.finished)
	i.dropTenantMetrics(t.id)
	if keep || err != nil {
		// Data came in meanwhile (or could not be removed): open the TSDB
		// again, so that it is shipped in time as ever.
		if nt, lerr := i.lookup(t.id, true); lerr == nil && nt == nil {
			err = errors.Join(err, errors.New("reopening the tenant found nothing"))
		}
		return err
	}
	i.m.idleClosed.Inc()
	i.logger.Info("closed idle tenant TSDB", "tenant", t.id, "idle", time.Since(time.Unix(0, last)).Round(time.Second))
	return nil
}

// dropTenantMetrics forgets the per-tenant series of a closed tenant, so
// that idle tenants cost no memory in the registry either.
func (i *Ingester) dropTenantMetrics(id string) {
	l := prometheus.Labels{"tenant": id}
	for _, v := range []*prometheus.CounterVec{i.m.appended, i.m.rejected, i.m.exemplarsStored, i.m.shipped, i.m.shipFailures} {
		v.DeletePartialMatch(l)
	}
}
