package deletion

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Cache serves each tenant's requests to the read path: from memory for
// up to the reload period, then read again from the bucket on the next
// call. Changes made through the same process (Put) apply at once. It is
// safe for concurrent use; the requests it returns are shared and must not
// be changed.
type Cache struct {
	store *Store
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	tenants map[string]*cached
}

type cached struct {
	// lock is held while the tenant's requests are read from the bucket;
	// a channel, so that a reader waiting for it gives up with its ctx.
	lock   chan struct{}
	loaded time.Time
	reqs   []Request // the requests that hide, oldest first
}

// NewCache returns a cache over store that rereads a tenant's requests
// once they are older than reload.
func NewCache(store *Store, reload time.Duration) *Cache {
	return &Cache{store: store, ttl: reload, now: time.Now, tenants: map[string]*cached{}}
}

func (c *Cache) entry(tenant string) *cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.tenants[tenant]
	if !ok {
		e = &cached{lock: make(chan struct{}, 1)}
		c.tenants[tenant] = e
	}
	return e
}

// Hiding returns the tenant's requests whose matches reads must hide
// (pending and processed ones). A failure to read the bucket is an error,
// never an empty list: reads must not show what may be deleted.
func (c *Cache) Hiding(ctx context.Context, tenant string) ([]Request, error) {
	e := c.entry(tenant)
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the deletion requests of tenant %s: %w", tenant, ctx.Err())
	}
	defer func() { <-e.lock }()
	if !e.loaded.IsZero() && c.now().Sub(e.loaded) < c.ttl {
		return e.reqs, nil
	}
	all, err := c.store.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	e.reqs, e.loaded = hiding(all), c.now()
	return e.reqs, nil
}

// Put records a change made through this process, so that this process's
// reads apply it without waiting for the reload period.
func (c *Cache) Put(r Request) {
	e := c.entry(r.Tenant)
	e.lock <- struct{}{}
	defer func() { <-e.lock }()
	if e.loaded.IsZero() {
		return // nothing cached: the next read lists the bucket anyway
	}
	reqs := make([]Request, 0, len(e.reqs)+1)
	for _, o := range e.reqs {
		if o.ID != r.ID {
			reqs = append(reqs, o)
		}
	}
	reqs = hiding(append(reqs, r))
	slices.SortFunc(reqs, func(a, b Request) int { return strings.Compare(a.ID, b.ID) })
	e.reqs = reqs
}

// Forget drops what the cache holds of a tenant (after its deletion).
func (c *Cache) Forget(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tenants, tenant)
}

func hiding(all []Request) []Request {
	out := make([]Request, 0, len(all))
	for _, r := range all {
		if r.Hides() {
			out = append(out, r)
		}
	}
	return out
}
