package ingester

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// tenant returns the tenant's open TSDB, acquired: the caller must release
// it. With create, a missing TSDB is opened or created; without, nil is
// returned for a tenant with no data here. Waiting for a TSDB that is being
// opened (its WAL replayed), or for a deleted tenant's data to be removed,
// lasts only as long as ctx.
func (i *Ingester) tenant(ctx context.Context, id string, create bool) (*tenant, error) {
	for {
		t, err := i.lookup(id, create)
		if err != nil || t == nil {
			return nil, err
		}
		select {
		case <-t.opened:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the TSDB of tenant %q to open: %w", id, ctx.Err())
		}
		if t.openErr != nil {
			return nil, t.openErr
		}
		if t.acquire() {
			return t, nil
		}
		// The tenant is being deleted (or the ingester closed): once that
		// is done, look again.
		select {
		case <-t.finished:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the deletion of tenant %q to finish: %w", id, ctx.Err())
		}
	}
}

// lookup returns the tenant's entry, creating it and starting to open its
// TSDB when create is set or its directory exists.
func (i *Ingester) lookup(id string, create bool) (*tenant, error) {
	i.mu.RLock()
	t, ok := i.tenants[id]
	closed := i.closed
	i.mu.RUnlock()
	switch {
	case closed:
		return nil, ErrClosed
	case ok:
		return t, nil
	case !create && !i.onDisk(id):
		return nil, nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, ErrClosed
	}
	if t, ok = i.tenants[id]; ok {
		return t, nil
	}
	if len(i.tenants) >= i.cfg.MaxTenants {
		return nil, fmt.Errorf("%w: the limit is %d (-ingester.max-tenants)", ErrTooManyTenants, i.cfg.MaxTenants)
	}
	t = newTenant(id)
	i.tenants[id] = t
	i.m.tenants.Set(float64(len(i.tenants)))
	// Open outside the lock: WAL replay can take long, and other tenants
	// must not wait for it.
	go i.open(t)
	return t, nil
}

func (i *Ingester) onDisk(id string) bool {
	if tenantauth.ValidateID(id) != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(i.cfg.Dir, id))
	return err == nil
}

func (i *Ingester) open(t *tenant) {
	defer close(t.opened)
	start := time.Now()
	t.share = i.share
	t.openErr = t.openTSDB(i.cfg, i.limits, i.logger.With("tenant", t.id))
	i.m.walReplay.Observe(time.Since(start).Seconds())
	if t.openErr != nil {
		i.logger.Error("open tenant TSDB", "tenant", t.id, "err", t.openErr)
		i.forget(t)
	}
}

// forget removes t from the open tenants, unless another entry has taken
// its place.
func (i *Ingester) forget(t *tenant) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.tenants[t.id] == t {
		delete(i.tenants, t.id)
		i.m.tenants.Set(float64(len(i.tenants)))
	}
}

// eachTenant calls f for every tenant whose TSDB is open, holding it for
// the call.
func (i *Ingester) eachTenant(f func(*tenant)) {
	for _, t := range i.all() {
		select {
		case <-t.opened:
		default:
			continue
		}
		if t.openErr == nil && t.acquire() {
			f(t)
			t.release()
		}
	}
}

// all returns every tenant entry, open or not.
func (i *Ingester) all() []*tenant {
	i.mu.RLock()
	defer i.mu.RUnlock()
	ts := make([]*tenant, 0, len(i.tenants))
	for _, t := range i.tenants {
		ts = append(ts, t)
	}
	return ts
}

// DeleteTenant removes the tenant's TSDB and its local data. It waits for
// the pushes and queries that hold the TSDB to finish (a query holds it
// until its querier is closed); pushes and queries that arrive meanwhile
// wait for the deletion, then find the tenant empty, and a push starts a
// new TSDB.
func (i *Ingester) DeleteTenant(id string) error {
	if err := tenantauth.ValidateID(id); err != nil {
		return err
	}
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return ErrClosed
	}
	t, ok := i.tenants[id]
	var (
		idle  <-chan struct{}
		owner bool
	)
	if !ok {
		// Not open: hold the name while the directory goes, so that no push
		// creates a TSDB in it meanwhile. It is retired before anyone can
		// see it, as it has no TSDB to hand out.
		t = newTenant(id)
		close(t.opened)
		idle, owner = t.retire()
		i.tenants[id] = t
	}
	i.mu.Unlock()
	if ok {
		idle, owner = t.retire()
	}
	if !owner {
		// Another deletion, or the ingester's Close, has it.
		<-t.finished
		i.mu.RLock()
		defer i.mu.RUnlock()
		if i.closed {
			return ErrClosed
		}
		return nil
	}
	<-t.opened
	var err error
	if t.openErr == nil && t.db != nil {
		<-idle
		err = t.db.Close()
	}
	err = errors.Join(err, os.RemoveAll(filepath.Join(i.cfg.Dir, id)))
	i.forget(t)
	close(t.finished)
	return err
}

// Close closes every tenant TSDB cleanly, writing metadata first. It waits
// for pushes and queries still holding a TSDB; the HTTP server should have
// drained before. Close is idempotent.
func (i *Ingester) Close() error {
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return nil
	}
	i.closed = true
	i.mu.Unlock()

	var errs []error
	for _, t := range i.all() {
		idle, owner := t.retire()
		if !owner { // being deleted
			<-t.finished
			continue
		}
		<-t.opened
		if t.openErr == nil {
			<-idle
			errs = append(errs, i.closeTenant(t))
		}
		close(t.finished)
	}
	return errors.Join(errs...)
}

func (i *Ingester) closeTenant(t *tenant) error {
	var errs []error
	if i.cfg.FlushOnShutdown {
		if err := i.flush(t); err != nil {
			errs = append(errs, fmt.Errorf("flush tenant %q: %w", t.id, err))
		}
	}
	if err := t.close(); err != nil {
		errs = append(errs, fmt.Errorf("close tenant %q: %w", t.id, err))
	}
	return errors.Join(errs...)
}
