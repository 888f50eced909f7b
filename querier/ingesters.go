package querier

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// IngesterReader is one ingester as the querier reads it over the network,
// for the tenant of each call's context.
type IngesterReader interface {
	Select(ctx context.Context, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet
	LabelNames(ctx context.Context, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, error)
	LabelValues(ctx context.Context, name string, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, error)
	Metadata(ctx context.Context, metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) error
	Exemplars(ctx context.Context, mint, maxt int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error)
}

// IngesterRing tells which ingesters hold a tenant's recent data: every
// instance that may have it, and how many of them may fail.
type IngesterRing interface {
	GetReplicationSetForOperation(op ring.Operation) (ring.ReplicationSet, error)
	ShuffleShardWithLookback(identifier string, size int, lookbackPeriod time.Duration, now time.Time) ring.ReadRing
	InstancesCount() int
}

// RingConfig configures reading the ingesters of a ring.
type RingConfig struct {
	// QueryIngestersWithin: queries that end earlier than this before now
	// do not ask the ingesters (their data is in the bucket by then). 0
	// asks them always.
	QueryIngestersWithin time.Duration
	// ShuffleShardingLookback: a shuffle-sharded tenant's queries also ask
	// the ingesters that joined its shard within this long, as they may
	// have taken some of its series.
	ShuffleShardingLookback time.Duration
}

// RegisterFlags registers the flags of reading ingesters that run apart.
func (c *RingConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.ShuffleShardingLookback, "querier.shuffle-sharding-ingesters-lookback-period", 13*time.Hour, "A shuffle-sharded tenant's queries also ask the ingesters that joined its shard within this long (keep it at least -querier.query-ingesters-within).")
	fs.DurationVar(&c.QueryIngestersWithin, "querier.query-ingesters-within", 13*time.Hour, "Queries whose range ends longer ago than this do not ask the ingesters, when they run apart (their data is in the bucket by then). 0 asks them always.")
}

// Ingesters is the Source, ExemplarSource and MetadataSource of a querier
// whose ingesters run apart: each query asks every ingester of the ring's
// replication set for reads, tolerates as many failures as the set allows
// (one of three replicas), and merges the replicas' copies so that every
// sample counts once. With more failures it fails, naming the ingesters
// that did not answer: never a silently partial result.
type Ingesters struct {
	cfg       RingConfig
	shardSize func(tenant string) int
	ring      IngesterRing
	clients   func(addr string) (IngesterReader, error)
	now       func() time.Time
}

// NewIngesters returns the ingesters of r, reached through clients.
func NewIngesters(cfg RingConfig, r IngesterRing, clients func(addr string) (IngesterReader, error)) *Ingesters {
	return &Ingesters{cfg: cfg, ring: r, clients: clients, now: time.Now, shardSize: func(string) int { return 0 }}
}

var (
	_ Source         = (*Ingesters)(nil)
	_ ExemplarSource = (*Ingesters)(nil)
)

// replicas is one read's replication set with its clients, for one
// tenant.
type replicas struct {
	tenant  string
	set     ring.ReplicationSet
	clients []IngesterReader
}

// SetShardSize reads each tenant's series from only its shuffle shard of
// size(tenant) ingesters (0: all). Set it before use.
func (in *Ingesters) SetShardSize(size func(tenant string) int) { in.shardSize = size }

func (in *Ingesters) replicas(tenant string) (*replicas, error) {
	var (
		set ring.ReplicationSet
		err error
	)
	if size := in.shardSize(tenant); size > 0 && size < in.ring.InstancesCount() {
		set, err = in.ring.ShuffleShardWithLookback(tenant, size, in.cfg.ShuffleShardingLookback, in.now()).GetReplicationSetForOperation(ring.Read)
	} else {
		set, err = in.ring.GetReplicationSetForOperation(ring.Read)
	}
	if err != nil {
		return nil, promql.ErrStorage{Err: fmt.Errorf("cannot read the ingesters: %w", err)}
	}
	rs := &replicas{tenant: tenant, set: set, clients: make([]IngesterReader, len(set.Instances))}
	for k, inst := range set.Instances {
		if rs.clients[k], err = in.clients(inst.Addr); err != nil {
			return nil, promql.ErrStorage{Err: fmt.Errorf("ingester %s (%s): %w", inst.Id, inst.Addr, err)}
		}
	}
	return rs, nil
}

// skip reports whether [mint, maxt] is too old for the ingesters to hold.
func (in *Ingesters) skip(maxt int64) bool {
	w := in.cfg.QueryIngestersWithin
	return w > 0 && maxt < in.now().Add(-w).UnixMilli()
}

// Querier implements Source.
func (in *Ingesters) Querier(_ context.Context, tenant string, mint, maxt int64) (storage.Querier, error) {
	if in.skip(maxt) {
		return storage.NoopQuerier(), nil
	}
	r, err := in.replicas(tenant)
	if err != nil {
		return nil, err
	}
	return &ringQuerier{r: r, mint: mint, maxt: maxt}, nil
}

// ChunkQuerier implements Source.
func (in *Ingesters) ChunkQuerier(_ context.Context, tenant string, mint, maxt int64) (storage.ChunkQuerier, error) {
	if in.skip(maxt) {
		return storage.NoopChunkedQuerier(), nil
	}
	r, err := in.replicas(tenant)
	if err != nil {
		return nil, err
	}
	return &ringChunkQuerier{ringQuerier{r: r, mint: mint, maxt: maxt}}, nil
}

// each calls f for every replica at once and returns the answers of those
// that succeeded, or an error naming the failed ones when more failed
// than the set tolerates. The calls are for the replicas' tenant alone,
// also when ctx is a federated read's.
func each[T any](ctx context.Context, r *replicas, f func(context.Context, IngesterReader) (T, error)) ([]T, error) {
	ctx = tenantauth.With(ctx, tenantauth.Actor(ctx), r.tenant)
	out := make([]T, len(r.clients))
	errs := make([]error, len(r.clients))
	var wg sync.WaitGroup
	for k, c := range r.clients {
		wg.Go(func() { out[k], errs[k] = f(ctx, c) })
	}
	wg.Wait()
	ok := out[:0]
	var failed []string
	zones := map[string]bool{}
	for k := range r.clients {
		if errs[k] != nil {
			inst := r.set.Instances[k]
			failed = append(failed, fmt.Sprintf("%s (%s): %v", inst.Id, inst.Addr, errs[k]))
			zones[inst.Zone] = true
			continue
		}
		ok = append(ok, out[k])
	}
	if len(failed) == 0 {
		return ok, nil
	}
	// With zone awareness every series has a replica in each zone, so the
	// failures may span as many zones as the set allows, however many
	// ingesters that is; without, as many ingesters.
	if z := r.set.MaxUnavailableZones; z > 0 {
		if len(zones) > z {
			return nil, promql.ErrStorage{Err: fmt.Errorf("ingesters of %d zones did not answer and at most %d zone may fail; the answer would be incomplete: %s",
				len(zones), z, strings.Join(failed, "; "))}
		}
		return ok, nil
	}
	if len(failed) > r.set.MaxErrors {
		return nil, promql.ErrStorage{Err: fmt.Errorf("%d of %d ingesters did not answer and at most %d may fail; the answer would be incomplete: %s",
			len(failed), len(r.clients), r.set.MaxErrors, strings.Join(failed, "; "))}
	}
	return ok, nil
}

// ringQuerier reads one tenant's series from every replica.
type ringQuerier struct {
	r          *replicas
	mint, maxt int64
}

// selectChunks reads every replica's chunk series in full (a replica can
// only be counted as answered once its stream ended well) and returns one
// set per replica that answered.
func (q *ringQuerier) selectChunks(ctx context.Context, hints *storage.SelectHints, ms []*labels.Matcher) ([]storage.ChunkSeriesSet, error) {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	return each(ctx, q.r, func(ctx context.Context, c IngesterReader) (storage.ChunkSeriesSet, error) {
		set := c.Select(ctx, mint, maxt, hints, ms...)
		var all []storage.ChunkSeries
		for set.Next() {
			all = append(all, set.At())
		}
		if err := set.Err(); err != nil {
			return nil, err
		}
		return &listChunkSet{series: all}, nil
	})
}

func (q *ringQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return mergeReplicas(q.selectChunks(ctx, hints, ms))
}

// mergeReplicas merges chunk series sets whose sources hold copies of the
// same samples (replicas, or blocks of several ingesters) into one series
// set: the chained merge keeps one of each sample.
func mergeReplicas(sets []storage.ChunkSeriesSet, err error) storage.SeriesSet {
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	ss := make([]storage.SeriesSet, len(sets))
	for k, s := range sets {
		ss[k] = storage.NewSeriesSetFromChunkSeriesSet(s)
	}
	return storage.NewMergeSeriesSet(ss, 0, storage.ChainedSeriesMerge)
}

func (q *ringQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	lists, err := each(ctx, q.r, func(ctx context.Context, c IngesterReader) ([]string, error) {
		return c.LabelNames(ctx, q.mint, q.maxt, limitOf(hints), ms...)
	})
	return union(lists, limitOf(hints)), nil, err
}

func (q *ringQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	lists, err := each(ctx, q.r, func(ctx context.Context, c IngesterReader) ([]string, error) {
		return c.LabelValues(ctx, name, q.mint, q.maxt, limitOf(hints), ms...)
	})
	return union(lists, limitOf(hints)), nil, err
}

func (q *ringQuerier) Close() error { return nil }

type ringChunkQuerier struct{ ringQuerier }

func (q *ringChunkQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	sets, err := q.selectChunks(ctx, hints, ms)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	return storage.NewMergeChunkSeriesSet(sets, 0, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
}

// listChunkSet is a ChunkSeriesSet over series read already.
type listChunkSet struct {
	series []storage.ChunkSeries
	next   int
}

func (s *listChunkSet) Next() bool {
	s.next++
	return s.next <= len(s.series)
}

func (s *listChunkSet) At() storage.ChunkSeries           { return s.series[s.next-1] }
func (s *listChunkSet) Err() error                        { return nil }
func (s *listChunkSet) Warnings() annotations.Annotations { return nil }

func limitOf(h *storage.LabelHints) int {
	if h == nil {
		return 0
	}
	return h.Limit
}

// union merges sorted string lists, without duplicates, up to limit (0:
// all).
func union(lists [][]string, limit int) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Metadata implements MetadataSource: the union of every replica's.
func (in *Ingesters) Metadata(ctx context.Context, tenant, metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) error {
	r, err := in.replicas(tenant)
	if err != nil {
		return err
	}
	maps, err := each(ctx, r, func(ctx context.Context, c IngesterReader) (map[string][]metadata.Metadata, error) {
		m := map[string][]metadata.Metadata{}
		return m, c.Metadata(ctx, metric, limit, limitPerMetric, m)
	})
	if err != nil {
		return err
	}
	for _, m := range maps {
		for family, mds := range m {
			for _, md := range mds {
				if !slices.Contains(into[family], md) {
					into[family] = append(into[family], md)
				}
			}
		}
	}
	return nil
}

// ExemplarQuerier implements ExemplarSource.
func (in *Ingesters) ExemplarQuerier(ctx context.Context, tenant string) (storage.ExemplarQuerier, error) {
	r, err := in.replicas(tenant)
	if err != nil {
		return nil, err
	}
	return &ringExemplars{ctx: ctx, r: r}, nil
}

// ringExemplars reads exemplars from every replica and keeps one copy of
// each.
type ringExemplars struct {
	ctx context.Context
	r   *replicas
}

func (e *ringExemplars) Select(mint, maxt int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	lists, err := each(e.ctx, e.r, func(ctx context.Context, c IngesterReader) ([]exemplar.QueryResult, error) {
		return c.Exemplars(ctx, mint, maxt, sets...)
	})
	if err != nil {
		return nil, err
	}
	bySeries := map[string]*exemplar.QueryResult{}
	var order []string
	for _, l := range lists {
		for _, r := range l {
			key := r.SeriesLabels.String()
			cur, ok := bySeries[key]
			if !ok {
				cur = &exemplar.QueryResult{SeriesLabels: r.SeriesLabels}
				bySeries[key] = cur
				order = append(order, key)
			}
			for _, ex := range r.Exemplars {
				if !slices.ContainsFunc(cur.Exemplars, func(o exemplar.Exemplar) bool { return o.Equals(ex) }) {
					cur.Exemplars = append(cur.Exemplars, ex)
				}
			}
		}
	}
	slices.Sort(order)
	out := make([]exemplar.QueryResult, 0, len(order))
	for _, k := range order {
		r := bySeries[k]
		slices.SortFunc(r.Exemplars, func(a, b exemplar.Exemplar) int { return int(a.Ts - b.Ts) })
		out = append(out, *r)
	}
	return out, nil
}
