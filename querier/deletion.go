package querier

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/fluxpulse/fluxpulse/deletion"
)

// DeletionRequests tells what reads of a tenant must hide: the requests
// to delete its series (#14) that are pending or processed. The requests
// returned are shared and read only.
type DeletionRequests interface {
	Hiding(ctx context.Context, tenant string) ([]deletion.Request, error)
}

// HideDeleted makes every read of the queryable (queries, series, labels,
// exemplars, export, remote read, the ruler's queries) hide the samples the
// tenants' deletion requests delete, from the moment a request is made.
// Call it before serving.
func (q *Queryable) HideDeleted(d DeletionRequests) { q.deletions = d }

// hiding returns the tenant's requests that delete something in
// [mint, maxt], or none.
func (q *Queryable) hiding(ctx context.Context, tenant string, mint, maxt int64) ([]deletion.Request, error) {
	if q.deletions == nil {
		return nil, nil
	}
	all, err := q.deletions.Hiding(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var out []deletion.Request
	for _, r := range all {
		if r.Overlaps(mint, maxt) {
			out = append(out, r)
		}
	}
	return out, nil
}

// hidingQuerier drops from a tenant's series the samples its deletion
// requests delete; a series left without samples in the querier's range
// is dropped whole, and label names and values are computed as if it did
// not exist.
type hidingQuerier struct {
	storage.Querier
	reqs       []deletion.Request // each overlaps [mint, maxt]
	mint, maxt int64
}

func (h *hidingQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := h.mint, h.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
		if hints.Func == "series" {
			// Whether a matched series keeps a sample needs its
			// samples, which a "series" select skips.
			hc := *hints
			hc.Func = ""
			hints = &hc
		}
	}
	return &hidingSet{SeriesSet: h.Querier.Select(ctx, sortSeries, hints, ms...), reqs: h.reqs, mint: mint, maxt: maxt}
}

// candidates returns the series matching ms that a request deletes from:
// the only ones whose label names and values can vanish.
func (h *hidingQuerier) candidates(ctx context.Context, ms []*labels.Matcher) ([]labels.Labels, error) {
	seen := map[string]bool{}
	var out []labels.Labels
	for _, r := range h.reqs {
		for _, sel := range r.Matchers() {
			hints := &storage.SelectHints{Start: max(h.mint, r.Start), End: min(h.maxt, r.End), Func: "series"}
			ss := h.Querier.Select(ctx, false, hints, append(slices.Clone(ms), sel...)...)
			for ss.Next() {
				ls := ss.At().Labels()
				if k := ls.String(); !seen[k] {
					seen[k] = true
					out = append(out, ls)
				}
			}
			if err := ss.Err(); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// visible reports whether a series matching ms keeps a sample.
func (h *hidingQuerier) visible(ctx context.Context, ms []*labels.Matcher) (bool, error) {
	ss := h.Select(ctx, false, &storage.SelectHints{Start: h.mint, End: h.maxt}, ms...)
	if ss.Next() {
		return true, nil
	}
	return false, ss.Err()
}

// keepVisible keeps the values of cands for which, with the matcher
// matcherFor(v) added to ms, a series keeps a sample.
func (h *hidingQuerier) keepVisible(ctx context.Context, vals []string, cands map[string]bool, ms []*labels.Matcher, matcherFor func(string) *labels.Matcher) ([]string, error) {
	out := vals[:0]
	for _, v := range vals {
		if cands[v] {
			ok, err := h.visible(ctx, append(slices.Clone(ms), matcherFor(v)))
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func (h *hidingQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	cands, err := h.candidates(ctx, ms)
	if err != nil || len(cands) == 0 {
		if err != nil {
			return nil, nil, err
		}
		return h.Querier.LabelValues(ctx, name, hints, ms...)
	}
	vals, ann, err := h.Querier.LabelValues(ctx, name, nil, ms...) // all: some may go
	if err != nil {
		return nil, ann, err
	}
	cv := map[string]bool{}
	for _, ls := range cands {
		if v := ls.Get(name); v != "" {
			cv[v] = true
		}
	}
	vals, err = h.keepVisible(ctx, vals, cv, ms, func(v string) *labels.Matcher {
		return labels.MustNewMatcher(labels.MatchEqual, name, v)
	})
	return truncateTo(vals, hints), ann, err
}

func (h *hidingQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	cands, err := h.candidates(ctx, ms)
	if err != nil || len(cands) == 0 {
		if err != nil {
			return nil, nil, err
		}
		return h.Querier.LabelNames(ctx, hints, ms...)
	}
	names, ann, err := h.Querier.LabelNames(ctx, nil, ms...)
	if err != nil {
		return nil, ann, err
	}
	cn := map[string]bool{}
	for _, ls := range cands {
		ls.Range(func(l labels.Label) { cn[l.Name] = true })
	}
	names, err = h.keepVisible(ctx, names, cn, ms, func(n string) *labels.Matcher {
		return labels.MustNewMatcher(labels.MatchNotEqual, n, "")
	})
	return truncateTo(names, hints), ann, err
}

func truncateTo(vs []string, hints *storage.LabelHints) []string {
	if hints != nil && hints.Limit > 0 && len(vs) > hints.Limit {
		return vs[:hints.Limit]
	}
	return vs
}

// hidingSet hides deleted samples of the series of a set, and the series
// left without samples in [mint, maxt].
type hidingSet struct {
	storage.SeriesSet
	reqs       []deletion.Request
	mint, maxt int64
	cur        storage.Series
}

func (s *hidingSet) Next() bool {
	for s.SeriesSet.Next() {
		ser := s.SeriesSet.At()
		ivs := deletion.Intervals(s.reqs, ser.Labels(), math.MinInt64, math.MaxInt64)
		if len(ivs) == 0 {
			s.cur = ser
			return true
		}
		hs := &hiddenSeries{Series: ser, ivs: ivs}
		if keepsSample(hs, s.mint, s.maxt) {
			s.cur = hs
			return true
		}
	}
	return false
}

func (s *hidingSet) At() storage.Series { return s.cur }

// keepsSample reports whether s has a sample in [mint, maxt]. An iterator
// error counts as a sample: the caller's own iteration reports it.
func keepsSample(s storage.Series, mint, maxt int64) bool {
	it := s.Iterator(nil)
	if it.Seek(mint) == chunkenc.ValNone {
		return it.Err() != nil
	}
	return it.AtT() <= maxt
}

// hiddenSeries is a series without the samples in ivs.
type hiddenSeries struct {
	storage.Series
	ivs []deletion.Interval
}

func (s *hiddenSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if h, ok := it.(*hidingIterator); ok {
		h.Iterator, h.ivs = s.Series.Iterator(h.Iterator), s.ivs
		return h
	}
	return &hidingIterator{Iterator: s.Series.Iterator(it), ivs: s.ivs}
}

// hidingIterator skips the samples in ivs. (go vet's stdmethods check
// mistakes Seek for io.Seeker; this Seek is chunkenc.Iterator's.)
type hidingIterator struct {
	chunkenc.Iterator
	ivs []deletion.Interval
}

// skip moves past hidden samples from the current one on.
func (it *hidingIterator) skip(vt chunkenc.ValueType) chunkenc.ValueType {
	for vt != chunkenc.ValNone {
		t := it.Iterator.AtT()
		k := slices.IndexFunc(it.ivs, func(iv deletion.Interval) bool { return t >= iv.Mint && t <= iv.Maxt })
		if k < 0 {
			return vt
		}
		if it.ivs[k].Maxt == math.MaxInt64 {
			return chunkenc.ValNone
		}
		vt = it.Iterator.Seek(it.ivs[k].Maxt + 1)
	}
	return vt
}

func (it *hidingIterator) Next() chunkenc.ValueType { return it.skip(it.Iterator.Next()) }

func (it *hidingIterator) Seek(t int64) chunkenc.ValueType { return it.skip(it.Iterator.Seek(t)) }

// hidingChunkQuerier is hidingQuerier for encoded chunks (remote read):
// a series a request deletes from is decoded, filtered and encoded again.
type hidingChunkQuerier struct {
	storage.ChunkQuerier
	reqs       []deletion.Request
	mint, maxt int64
}

func (h *hidingChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	mint, maxt := h.mint, h.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	return &hidingChunkSet{ChunkSeriesSet: h.ChunkQuerier.Select(ctx, sortSeries, hints, ms...), reqs: h.reqs, mint: mint, maxt: maxt}
}

type hidingChunkSet struct {
	storage.ChunkSeriesSet
	reqs       []deletion.Request
	mint, maxt int64
	cur        storage.ChunkSeries
	err        error
}

func (s *hidingChunkSet) Next() bool {
	for s.ChunkSeriesSet.Next() {
		cs := s.ChunkSeriesSet.At()
		ivs := deletion.Intervals(s.reqs, cs.Labels(), math.MinInt64, math.MaxInt64)
		if len(ivs) == 0 {
			s.cur = cs
			return true
		}
		decoded := storage.NewSeriesSetFromChunkSeriesSet(&listChunkSet{series: []storage.ChunkSeries{cs}})
		if !decoded.Next() {
			if s.err = decoded.Err(); s.err != nil {
				return false
			}
			continue
		}
		if decoded.At() == nil { // no chunks at all
			continue
		}
		hs := &hiddenSeries{Series: decoded.At(), ivs: ivs}
		if keepsSample(hs, s.mint, s.maxt) {
			s.cur = storage.NewSeriesToChunkEncoder(hs)
			return true
		}
	}
	return false
}

func (s *hidingChunkSet) At() storage.ChunkSeries { return s.cur }

func (s *hidingChunkSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.ChunkSeriesSet.Err()
}

// hidingExemplars drops the exemplars the requests delete.
type hidingExemplars struct {
	storage.ExemplarQuerier
	reqs []deletion.Request
}

func (h *hidingExemplars) Select(start, end int64, mss ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	res, err := h.ExemplarQuerier.Select(start, end, mss...)
	if err != nil {
		return nil, err
	}
	out := res[:0]
	for _, r := range res {
		ivs := deletion.Intervals(h.reqs, r.SeriesLabels, math.MinInt64, math.MaxInt64)
		if len(ivs) > 0 {
			r.Exemplars = slices.DeleteFunc(slices.Clone(r.Exemplars), func(e exemplar.Exemplar) bool { return deletion.InIntervals(ivs, e.Ts) })
			if len(r.Exemplars) == 0 {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}
