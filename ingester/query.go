package ingester

import (
	"context"

	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// Querier returns a querier over the tenant's data in [mint, maxt]. A tenant
// with no data on this ingester gets an empty querier, never an error and
// never a new TSDB. It does no I/O: ctx is there for the querier.Source
// interface.
func (i *Ingester) Querier(_ context.Context, tenantID string, mint, maxt int64) (storage.Querier, error) {
	t, err := i.tenant(tenantID, false)
	if err != nil || t == nil {
		return storage.NoopQuerier(), err
	}
	return t.db.Querier(mint, maxt)
}

// ChunkQuerier is Querier for encoded chunks, used by remote read.
func (i *Ingester) ChunkQuerier(_ context.Context, tenantID string, mint, maxt int64) (storage.ChunkQuerier, error) {
	t, err := i.tenant(tenantID, false)
	if err != nil || t == nil {
		return storage.NoopChunkedQuerier(), err
	}
	return t.db.ChunkQuerier(mint, maxt)
}

// ExemplarQuerier returns a querier over the tenant's exemplars, or nil when
// the tenant has none here.
func (i *Ingester) ExemplarQuerier(ctx context.Context, tenantID string) (storage.ExemplarQuerier, error) {
	t, err := i.tenant(tenantID, false)
	if err != nil || t == nil {
		return nil, err
	}
	return t.db.ExemplarQuerier(ctx)
}

// Metadata adds the tenant's metric metadata to into: one family when metric
// is set, else all, bounded as the Prometheus metadata API bounds them.
func (i *Ingester) Metadata(tenantID, metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) error {
	t, err := i.tenant(tenantID, false)
	if err != nil || t == nil {
		return err
	}
	t.meta.get(metric, limit, limitPerMetric, into)
	return nil
}
