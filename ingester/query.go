package ingester

import (
	"context"
	"sync"

	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// Querier returns a querier over the tenant's data in [mint, maxt]. A tenant
// with no data on this ingester gets an empty querier, never an error and
// never a new TSDB. The querier holds the tenant's TSDB until it is closed;
// ctx bounds the wait for a TSDB that is still opening.
func (i *Ingester) Querier(ctx context.Context, tenantID string, mint, maxt int64) (storage.Querier, error) {
	t, err := i.tenant(ctx, tenantID, false)
	if err != nil || t == nil {
		return storage.NoopQuerier(), err
	}
	q, err := t.db.Querier(mint, maxt)
	if err != nil {
		t.release()
		return nil, err
	}
	return &heldQuerier{Querier: q, release: t.release}, nil
}

// ChunkQuerier is Querier for encoded chunks, used by remote read.
func (i *Ingester) ChunkQuerier(ctx context.Context, tenantID string, mint, maxt int64) (storage.ChunkQuerier, error) {
	t, err := i.tenant(ctx, tenantID, false)
	if err != nil || t == nil {
		return storage.NoopChunkedQuerier(), err
	}
	q, err := t.db.ChunkQuerier(mint, maxt)
	if err != nil {
		t.release()
		return nil, err
	}
	return &heldChunkQuerier{ChunkQuerier: q, release: t.release}, nil
}

// heldQuerier releases the tenant it reads once it is closed.
type heldQuerier struct {
	storage.Querier
	release func()
	once    sync.Once
}

func (q *heldQuerier) Close() error {
	err := q.Querier.Close()
	q.once.Do(q.release)
	return err
}

type heldChunkQuerier struct {
	storage.ChunkQuerier
	release func()
	once    sync.Once
}

func (q *heldChunkQuerier) Close() error {
	err := q.ChunkQuerier.Close()
	q.once.Do(q.release)
	return err
}

// ExemplarQuerier returns a querier over the tenant's exemplars, or nil when
// the tenant has none here. It reads the head's in-memory exemplar buffer
// only, which stays readable after the TSDB is closed, so it does not hold
// the tenant.
func (i *Ingester) ExemplarQuerier(ctx context.Context, tenantID string) (storage.ExemplarQuerier, error) {
	t, err := i.tenant(ctx, tenantID, false)
	if err != nil || t == nil {
		return nil, err
	}
	defer t.release()
	return t.db.ExemplarQuerier(ctx)
}

// Metadata adds the tenant's metric metadata to into: one family when metric
// is set, else all, bounded as the Prometheus metadata API bounds them.
func (i *Ingester) Metadata(ctx context.Context, tenantID, metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) error {
	t, err := i.tenant(ctx, tenantID, false)
	if err != nil || t == nil {
		return err
	}
	defer t.release()
	t.meta.get(metric, limit, limitPerMetric, into)
	return nil
}
