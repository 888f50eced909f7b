package querier

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Source holds tenants' series: the ingester for recent data, the block
// store for data shipped to object storage. A tenant a source knows nothing
// about gets an empty querier, not an error. ctx is the request's: it bounds
// whatever I/O opening the querier needs (the block store's sync with the
// bucket), not the querier's later calls, which get their own.
type Source interface {
	Querier(ctx context.Context, tenant string, mint, maxt int64) (storage.Querier, error)
	ChunkQuerier(ctx context.Context, tenant string, mint, maxt int64) (storage.ChunkQuerier, error)
}

// ExemplarSource holds tenants' exemplars. It returns nil for a tenant it
// holds none of.
type ExemplarSource interface {
	ExemplarQuerier(ctx context.Context, tenant string) (storage.ExemplarQuerier, error)
}

// Queryable is the one storage.Queryable behind the PromQL engine and the
// HTTP API. Prometheus asks for a querier without a context, so the querier
// it returns is lazy: it learns the tenants from the context of its first
// call, merges the sources of each tenant (identical samples from several
// sources collapse into one) and, for a federated read, merges the tenants,
// adding the __tenant_id__ label.
type Queryable struct {
	limits    *limits.Overrides
	lookback  time.Duration
	sources   []Source
	exemplars ExemplarSource
	deletions DeletionRequests // nil: nothing is hidden
}

var (
	_ storage.SampleAndChunkQueryable = (*Queryable)(nil)
	_ storage.ExemplarQueryable       = (*Queryable)(nil)
)

// NewQueryable returns a Queryable over the given sources, enforcing each
// tenant's query limits (lookback is the engine's lookback delta, which
// max_query_length allows on top).
func NewQueryable(lim *limits.Overrides, lookback time.Duration, ex ExemplarSource, sources ...Source) *Queryable {
	return &Queryable{limits: lim, lookback: lookback, sources: sources, exemplars: ex}
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &lazyQuerier{lazy: lazy[storage.Querier]{open: func(ctx context.Context) (storage.Querier, error) {
		return q.querier(ctx, mint, maxt)
	}}}, nil
}

// ChunkQuerier implements storage.ChunkQueryable.
func (q *Queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return &lazyChunkQuerier{lazy: lazy[storage.ChunkQuerier]{open: func(ctx context.Context) (storage.ChunkQuerier, error) {
		return q.chunkQuerier(ctx, mint, maxt)
	}}}, nil
}

func (q *Queryable) querier(ctx context.Context, mint, maxt int64) (storage.Querier, error) {
	ids, err := tenantauth.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	stats := statsFrom(ctx)
	if stats == nil {
		stats = NewStats(ids)
	}
	per := make([]storage.Querier, 0, len(ids))
	for _, id := range ids {
		lim := q.limits.Limits(id)
		tmin, tmax, err := clampRange(id, lim, q.lookback, mint, maxt)
		if err == nil {
			var tq storage.Querier
			if tq, err = q.tenantQuerier(ctx, id, tmin, tmax); err == nil {
				ts := stats.Tenant(id)
				if ts == nil {
					ts = &TenantStats{}
				}
				per = append(per, &limitedQuerier{Querier: tq, tenant: id, lim: lim, stats: ts})
			}
		}
		if err != nil {
			return nil, errors.Join(err, closeAll(per))
		}
	}
	if len(ids) == 1 {
		return per[0], nil
	}
	return &federatedQuerier{federated[storage.Querier]{ids: ids, queriers: per}}, nil
}

// tenantQuerier merges the tenant's sources and hides what its deletion
// requests delete.
func (q *Queryable) tenantQuerier(ctx context.Context, id string, mint, maxt int64) (storage.Querier, error) {
	reqs, err := q.hiding(ctx, id, mint, maxt)
	if err != nil {
		return nil, err
	}
	qs := make([]storage.Querier, 0, len(q.sources))
	for _, s := range q.sources {
		sq, err := s.Querier(ctx, id, mint, maxt)
		if err != nil {
			return nil, errors.Join(err, closeAll(qs))
		}
		qs = append(qs, sq)
	}
	merged := qs[0]
	if len(qs) > 1 {
		merged = storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge)
	}
	if len(reqs) > 0 {
		return &hidingQuerier{Querier: merged, reqs: reqs, mint: mint, maxt: maxt}, nil
	}
	return merged, nil
}

// tenantChunkQuerier is tenantQuerier for encoded chunks.
func (q *Queryable) tenantChunkQuerier(ctx context.Context, id string, mint, maxt int64) (storage.ChunkQuerier, error) {
	reqs, err := q.hiding(ctx, id, mint, maxt)
	if err != nil {
		return nil, err
	}
	qs := make([]storage.ChunkQuerier, 0, len(q.sources))
	for _, s := range q.sources {
		sq, err := s.ChunkQuerier(ctx, id, mint, maxt)
		if err != nil {
			return nil, errors.Join(err, closeAll(qs))
		}
		qs = append(qs, sq)
	}
	merged := qs[0]
	if len(qs) > 1 {
		merged = storage.NewMergeChunkQuerier(qs, nil, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
	}
	if len(reqs) > 0 {
		return &hidingChunkQuerier{ChunkQuerier: merged, reqs: reqs, mint: mint, maxt: maxt}, nil
	}
	return merged, nil
}

func (q *Queryable) chunkQuerier(ctx context.Context, mint, maxt int64) (storage.ChunkQuerier, error) {
	ids, err := tenantauth.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	per := make([]storage.ChunkQuerier, 0, len(ids))
	for _, id := range ids {
		tmin, tmax, err := clampRange(id, q.limits.Limits(id), q.lookback, mint, maxt)
		var cq storage.ChunkQuerier
		if err == nil {
			cq, err = q.tenantChunkQuerier(ctx, id, tmin, tmax)
		}
		if err != nil {
			return nil, errors.Join(err, closeAll(per))
		}
		per = append(per, cq)
	}
	if len(ids) == 1 {
		return per[0], nil
	}
	return &federatedChunkQuerier{federated[storage.ChunkQuerier]{ids: ids, queriers: per}}, nil
}

// ExemplarQuerier implements storage.ExemplarQueryable for the tenants in ctx.
func (q *Queryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	ids, err := tenantauth.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	f := &federatedExemplars{ids: ids, queriers: make([]storage.ExemplarQuerier, len(ids))}
	for k, id := range ids {
		if q.exemplars == nil {
			break
		}
		if f.queriers[k], err = q.exemplars.ExemplarQuerier(ctx, id); err != nil {
			return nil, err
		}
		reqs, err := q.hiding(ctx, id, math.MinInt64, math.MaxInt64)
		if err != nil {
			return nil, err
		}
		if len(reqs) > 0 && f.queriers[k] != nil {
			f.queriers[k] = &hidingExemplars{ExemplarQuerier: f.queriers[k], reqs: reqs}
		}
	}
	if len(ids) == 1 {
		if f.queriers[0] == nil {
			return emptyExemplars{}, nil
		}
		return f.queriers[0], nil
	}
	return f, nil
}

type emptyExemplars struct{}

func (emptyExemplars) Select(int64, int64, ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return []exemplar.QueryResult{}, nil
}

func closeAll[Q storage.LabelQuerier](qs []Q) error {
	var errs []error
	for _, q := range qs {
		errs = append(errs, q.Close())
	}
	return errors.Join(errs...)
}

// lazy opens its querier on first use, with that call's context, and keeps
// it for the querier's lifetime (one query).
type lazy[Q storage.LabelQuerier] struct {
	open func(context.Context) (Q, error)

	mu     sync.Mutex
	done   bool
	inner  Q
	err    error
	closed bool
}

func (l *lazy[Q]) get(ctx context.Context) (Q, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.done = true
		l.inner, l.err = l.open(ctx)
	}
	return l.inner, l.err
}

func (l *lazy[Q]) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	in, err := l.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	return in.LabelValues(ctx, name, hints, ms...)
}

func (l *lazy[Q]) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	in, err := l.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	return in.LabelNames(ctx, hints, ms...)
}

func (l *lazy[Q]) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done || l.err != nil || l.closed {
		return nil
	}
	l.closed = true
	return l.inner.Close()
}

type lazyQuerier struct{ lazy[storage.Querier] }

func (l *lazyQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	in, err := l.get(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	return in.Select(ctx, sortSeries, hints, ms...)
}

type lazyChunkQuerier struct{ lazy[storage.ChunkQuerier] }

func (l *lazyChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	in, err := l.get(ctx)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	return in.Select(ctx, sortSeries, hints, ms...)
}
