package querier

import (
	"context"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// TenantLabel names the tenant of each series in a federated read.
const TenantLabel = "__tenant_id__"

// originalTenantLabel keeps a series' own __tenant_id__ label, if it had
// one, when a federated read sets the label to the tenant.
const originalTenantLabel = "original_" + TenantLabel

// federated merges the queriers of several tenants. Matchers on
// __tenant_id__ pick tenants and are not passed on.
type federated[Q storage.LabelQuerier] struct {
	ids      []string // sorted
	queriers []Q      // one per id
}

// split returns the indexes of the tenants the matchers on __tenant_id__
// allow, and the other matchers.
func (f *federated[Q]) split(ms []*labels.Matcher) ([]int, []*labels.Matcher) {
	var rest []*labels.Matcher
	var tenantMs []*labels.Matcher
	for _, m := range ms {
		if m.Name == TenantLabel {
			tenantMs = append(tenantMs, m)
		} else {
			rest = append(rest, m)
		}
	}
	idx := make([]int, 0, len(f.ids))
	for k, id := range f.ids {
		ok := true
		for _, m := range tenantMs {
			ok = ok && m.Matches(id)
		}
		if ok {
			idx = append(idx, k)
		}
	}
	return idx, rest
}

func (f *federated[Q]) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	idx, rest := f.split(ms)
	if name == TenantLabel {
		out := make([]string, 0, len(idx))
		for _, k := range idx {
			out = append(out, f.ids[k])
		}
		return out, nil, nil
	}
	var (
		all   []string
		warns annotations.Annotations
	)
	for _, k := range idx {
		vs, w, err := f.queriers[k].LabelValues(ctx, name, hints, rest...)
		if err != nil {
			return nil, w, err
		}
		warns.Merge(w)
		all = append(all, vs...)
	}
	return sortedUnique(all, hints), warns, nil
}

func (f *federated[Q]) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	idx, rest := f.split(ms)
	if len(idx) == 0 {
		return nil, nil, nil
	}
	all := []string{TenantLabel}
	var warns annotations.Annotations
	for _, k := range idx {
		ns, w, err := f.queriers[k].LabelNames(ctx, hints, rest...)
		if err != nil {
			return nil, w, err
		}
		warns.Merge(w)
		all = append(all, ns...)
	}
	return sortedUnique(all, hints), warns, nil
}

func (f *federated[Q]) Close() error { return closeAll(f.queriers) }

func sortedUnique(vs []string, hints *storage.LabelHints) []string {
	slices.Sort(vs)
	vs = slices.Compact(vs)
	if hints != nil && hints.Limit > 0 && len(vs) > hints.Limit {
		vs = vs[:hints.Limit]
	}
	return vs
}

type federatedQuerier struct{ federated[storage.Querier] }

func (f *federatedQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	idx, rest := f.split(ms)
	sets := make([]storage.SeriesSet, 0, len(idx))
	for _, k := range idx {
		// Merging needs sorted sets, whatever the caller asked for.
		sets = append(sets, &tenantSeriesSet{SeriesSet: f.queriers[k].Select(ctx, true, hints, rest...), id: f.ids[k]})
	}
	return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
}

type federatedChunkQuerier struct {
	federated[storage.ChunkQuerier]
}

func (f *federatedChunkQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	idx, rest := f.split(ms)
	sets := make([]storage.ChunkSeriesSet, 0, len(idx))
	for _, k := range idx {
		sets = append(sets, &tenantChunkSeriesSet{ChunkSeriesSet: f.queriers[k].Select(ctx, true, hints, rest...), id: f.ids[k]})
	}
	return storage.NewMergeChunkSeriesSet(sets, 0, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
}

// withTenant returns ls with __tenant_id__ set to id, keeping an existing
// __tenant_id__ label as original___tenant_id__.
func withTenant(ls labels.Labels, id string) labels.Labels {
	b := labels.NewBuilder(ls)
	if v := ls.Get(TenantLabel); v != "" {
		b.Set(originalTenantLabel, v)
	}
	b.Set(TenantLabel, id)
	return b.Labels()
}

type tenantSeriesSet struct {
	storage.SeriesSet
	id string
}

func (s *tenantSeriesSet) At() storage.Series {
	in := s.SeriesSet.At()
	return &tenantSeries{Series: in, ls: withTenant(in.Labels(), s.id)}
}

type tenantSeries struct {
	storage.Series
	ls labels.Labels
}

func (s *tenantSeries) Labels() labels.Labels { return s.ls }

type tenantChunkSeriesSet struct {
	storage.ChunkSeriesSet
	id string
}

func (s *tenantChunkSeriesSet) At() storage.ChunkSeries {
	in := s.ChunkSeriesSet.At()
	return &tenantChunkSeries{ChunkSeries: in, ls: withTenant(in.Labels(), s.id)}
}

type tenantChunkSeries struct {
	storage.ChunkSeries
	ls labels.Labels
}

func (s *tenantChunkSeries) Labels() labels.Labels { return s.ls }

// federatedExemplars queries the exemplars of several tenants and labels
// each result with its tenant.
type federatedExemplars struct {
	ids      []string
	queriers []storage.ExemplarQuerier // nil where a tenant has none
}

func (f *federatedExemplars) Select(start, end int64, mss ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	out := []exemplar.QueryResult{}
	for k, id := range f.ids {
		if f.queriers[k] == nil {
			continue
		}
		var keep [][]*labels.Matcher
		for _, ms := range mss {
			ok := true
			var rest []*labels.Matcher
			for _, m := range ms {
				if m.Name == TenantLabel {
					ok = ok && m.Matches(id)
				} else {
					rest = append(rest, m)
				}
			}
			if ok {
				keep = append(keep, rest)
			}
		}
		if len(keep) == 0 {
			continue
		}
		res, err := f.queriers[k].Select(start, end, keep...)
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			r.SeriesLabels = withTenant(r.SeriesLabels, id)
			out = append(out, r)
		}
	}
	return out, nil
}
