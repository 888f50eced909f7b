package querier

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// StoreGatewayReader is one store-gateway as the querier reads it, for the
// tenant of each call's context. Each call reads the blocks of ids the
// store-gateway holds and returns their IDs: it answers for those only.
type StoreGatewayReader interface {
	Series(ctx context.Context, ids []ulid.ULID, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) ([]storage.ChunkSeries, []ulid.ULID, error)
	LabelNames(ctx context.Context, ids []ulid.ULID, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, []ulid.ULID, error)
	LabelValues(ctx context.Context, ids []ulid.ULID, name string, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, []ulid.ULID, error)
}

// BlockLister lists a tenant's queryable blocks overlapping [mint, maxt].
type BlockLister interface {
	Blocks(ctx context.Context, tenant string, mint, maxt int64) ([]tsdb.BlockMeta, error)
}

// BlockOwners tells which store-gateways a block may be read from: its
// replication set in the store-gateway ring.
type BlockOwners interface {
	BlockOwners(id ulid.ULID) (ring.ReplicationSet, error)
}

// StoreGateways is the Source of shipped blocks for a querier whose
// store-gateways run apart: for each query it lists the blocks the query
// needs, asks one owner of each (one call per store-gateway for all the
// blocks it is asked for), and asks another owner for every block a
// store-gateway failed or did not hold, until each block is answered or
// none of its owners is left: then the query fails naming the blocks.
// Never a silently partial answer.
type StoreGateways struct {
	blocks  BlockLister
	owners  BlockOwners
	clients func(addr string) (StoreGatewayReader, error)
	retries prometheus.Counter
}

var _ Source = (*StoreGateways)(nil)

// NewStoreGateways returns the store-gateways of owners, reached through
// clients, for the blocks blocks lists.
func NewStoreGateways(blocks BlockLister, owners BlockOwners, clients func(addr string) (StoreGatewayReader, error), reg prometheus.Registerer) *StoreGateways {
	return &StoreGateways{blocks: blocks, owners: owners, clients: clients,
		retries: promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "fluxpulse_querier_store_gateway_retries_total",
			Help: "Blocks a querier asked another store-gateway for, after one failed or did not hold them."})}
}

// Querier implements Source.
func (g *StoreGateways) Querier(ctx context.Context, tenant string, mint, maxt int64) (storage.Querier, error) {
	metas, err := g.blocks.Blocks(ctx, tenant, mint, maxt)
	if err != nil {
		return nil, promql.ErrStorage{Err: err}
	}
	if len(metas) == 0 {
		return storage.NoopQuerier(), nil
	}
	return &gatewayQuerier{g: g, tenant: tenant, metas: metas, mint: mint, maxt: maxt}, nil
}

// ChunkQuerier implements Source.
func (g *StoreGateways) ChunkQuerier(ctx context.Context, tenant string, mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := g.Querier(ctx, tenant, mint, maxt)
	if err != nil {
		return nil, err
	}
	if gq, ok := q.(*gatewayQuerier); ok {
		return &gatewayChunkQuerier{gq}, nil
	}
	return storage.NoopChunkedQuerier(), nil
}

// attempt is what a block's reads tried: the owners asked, and why each
// did not answer.
type attempt struct {
	tried  map[string]bool // by instance address
	failed []string
}

// plan picks, for every block of ids, the first owner in its replication
// set not tried for it yet, and groups the blocks by the owner picked. It
// returns the instances by address, and an error naming every block
// without an owner left to ask, with what its attempts met.
func plan(ids []ulid.ULID, owners BlockOwners, attempts map[ulid.ULID]*attempt) (map[string][]ulid.ULID, map[string]ring.InstanceDesc, error) {
	byAddr := map[string][]ulid.ULID{}
	insts := map[string]ring.InstanceDesc{}
	var stuck []string
	for _, id := range ids {
		a := attempts[id]
		set, err := owners.BlockOwners(id)
		if err != nil {
			stuck = append(stuck, fmt.Sprintf("%s: no store-gateway owns it: %v", id, err))
			continue
		}
		k := slices.IndexFunc(set.Instances, func(in ring.InstanceDesc) bool { return a == nil || !a.tried[in.Addr] })
		if k < 0 {
			why := "no owner in the ring"
			if a != nil {
				why = strings.Join(a.failed, "; ")
			}
			stuck = append(stuck, fmt.Sprintf("%s: %s", id, why))
			continue
		}
		inst := set.Instances[k]
		byAddr[inst.Addr] = append(byAddr[inst.Addr], id)
		insts[inst.Addr] = inst
	}
	if len(stuck) > 0 {
		return nil, nil, promql.ErrStorage{Err: fmt.Errorf("%d blocks were not answered by any store-gateway; the answer would be incomplete: %s",
			len(stuck), strings.Join(stuck, "; "))}
	}
	return byAddr, insts, nil
}

// fetch reads blocks ids through call, asking each block's owners in turn
// until one answers for it (see StoreGateways), and returns every answer.
// The calls are for the tenant alone, also when ctx is a federated read's.
func fetch[T any](ctx context.Context, g *StoreGateways, tenant string, ids []ulid.ULID, call func(context.Context, StoreGatewayReader, []ulid.ULID) (T, []ulid.ULID, error)) ([]T, error) {
	ctx = tenantauth.With(ctx, tenantauth.Actor(ctx), tenant)
	attempts := map[ulid.ULID]*attempt{}
	var out []T
	for first := true; len(ids) > 0; first = false {
		byAddr, insts, err := plan(ids, g.owners, attempts)
		if err != nil {
			return nil, err
		}
		if !first {
			g.retries.Add(float64(len(ids)))
		}
		type result struct {
			addr string
			val  T
			held []ulid.ULID
			err  error
		}
		results := make(chan result, len(byAddr))
		var wg sync.WaitGroup
		for addr, asked := range byAddr {
			wg.Go(func() {
				r := result{addr: addr}
				var c StoreGatewayReader
				if c, r.err = g.clients(addr); r.err == nil {
					r.val, r.held, r.err = call(ctx, c, asked)
				}
				results <- r
			})
		}
		wg.Wait()
		close(results)
		answered := map[ulid.ULID]bool{}
		for r := range results {
			inst := insts[r.addr]
			if r.err == nil {
				out = append(out, r.val)
				for _, id := range r.held {
					answered[id] = true
				}
			}
			for _, id := range byAddr[r.addr] {
				if answered[id] {
					continue
				}
				a := attempts[id]
				if a == nil {
					a = &attempt{tried: map[string]bool{}}
					attempts[id] = a
				}
				a.tried[r.addr] = true
				why := "does not hold it"
				if r.err != nil {
					why = r.err.Error()
				}
				a.failed = append(a.failed, fmt.Sprintf("%s (%s): %s", inst.Id, r.addr, why))
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids = slices.DeleteFunc(ids, func(id ulid.ULID) bool { return answered[id] })
	}
	return out, nil
}

// gatewayQuerier reads one tenant's blocks through the store-gateways.
type gatewayQuerier struct {
	g          *StoreGateways
	tenant     string
	metas      []tsdb.BlockMeta
	mint, maxt int64
}

// ids are the blocks overlapping [mint, maxt], of a fresh slice.
func (q *gatewayQuerier) ids(mint, maxt int64) []ulid.ULID {
	var out []ulid.ULID
	for _, m := range q.metas {
		if m.MinTime <= maxt && m.MaxTime > mint {
			out = append(out, m.ULID)
		}
	}
	return out
}

func (q *gatewayQuerier) selectChunks(ctx context.Context, hints *storage.SelectHints, ms []*labels.Matcher) ([]storage.ChunkSeriesSet, error) {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	ids := q.ids(mint, maxt)
	if len(ids) == 0 {
		return nil, nil
	}
	lists, err := fetch(ctx, q.g, q.tenant, ids, func(ctx context.Context, c StoreGatewayReader, ids []ulid.ULID) ([]storage.ChunkSeries, []ulid.ULID, error) {
		return c.Series(ctx, ids, mint, maxt, hints, ms...)
	})
	sets := make([]storage.ChunkSeriesSet, len(lists))
	for k, l := range lists {
		sets[k] = &listChunkSet{series: l}
	}
	return sets, err
}

func (q *gatewayQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	// Blocks of several ingesters (RF copies) and several store-gateways
	// hold the same samples: mergeReplicas keeps one of each.
	return mergeReplicas(q.selectChunks(ctx, hints, ms))
}

func (q *gatewayQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	lists, err := fetch(ctx, q.g, q.tenant, q.ids(q.mint, q.maxt), func(ctx context.Context, c StoreGatewayReader, ids []ulid.ULID) ([]string, []ulid.ULID, error) {
		return c.LabelNames(ctx, ids, q.mint, q.maxt, limitOf(hints), ms...)
	})
	return union(lists, limitOf(hints)), nil, err
}

func (q *gatewayQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	lists, err := fetch(ctx, q.g, q.tenant, q.ids(q.mint, q.maxt), func(ctx context.Context, c StoreGatewayReader, ids []ulid.ULID) ([]string, []ulid.ULID, error) {
		return c.LabelValues(ctx, ids, name, q.mint, q.maxt, limitOf(hints), ms...)
	})
	return union(lists, limitOf(hints)), nil, err
}

func (q *gatewayQuerier) Close() error { return nil }

type gatewayChunkQuerier struct{ *gatewayQuerier }

func (q *gatewayChunkQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	sets, err := q.selectChunks(ctx, hints, ms)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	return storage.NewMergeChunkSeriesSet(sets, 0, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
}
