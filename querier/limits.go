package querier

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/fluxpulse/fluxpulse/limits"
)

// Stats counts what one request read, per tenant. The HTTP middleware puts
// it in the request context; the queriers fill it.
type Stats struct {
	tenants map[string]*TenantStats
}

// TenantStats is what a request read of one tenant.
type TenantStats struct {
	Series  atomic.Int64
	Samples atomic.Int64
}

// NewStats returns Stats for the given tenants.
func NewStats(tenants []string) *Stats {
	s := &Stats{tenants: make(map[string]*TenantStats, len(tenants))}
	for _, t := range tenants {
		s.tenants[t] = &TenantStats{}
	}
	return s
}

// Tenant returns the counters of one tenant, nil if it is not part of the
// request.
func (s *Stats) Tenant(t string) *TenantStats {
	if s == nil {
		return nil
	}
	return s.tenants[t]
}

type statsKey struct{}

// WithStats returns ctx carrying s.
func WithStats(ctx context.Context, s *Stats) context.Context {
	return context.WithValue(ctx, statsKey{}, s)
}

func statsFrom(ctx context.Context) *Stats {
	s, _ := ctx.Value(statsKey{}).(*Stats)
	return s
}

// clampRange applies max_query_length to a querier's range. A range left
// open (label and series calls without start) is shortened to the limit; an
// explicit range longer than the limit plus the lookback delta is refused.
func clampRange(tenant string, lim limits.Limits, lookback time.Duration, mint, maxt int64) (int64, int64, error) {
	if lim.MaxQueryLength <= 0 {
		return mint, maxt, nil
	}
	max := (lim.MaxQueryLength + lookback).Milliseconds()
	if maxt-mint <= max {
		return mint, maxt, nil
	}
	if mint <= math.MinInt64/2 || mint <= 0 && maxt-mint > 100*365*24*time.Hour.Milliseconds() {
		end := maxt
		if end >= math.MaxInt64/2 {
			end = time.Now().UnixMilli()
		}
		return end - lim.MaxQueryLength.Milliseconds(), maxt, nil
	}
	return 0, 0, &limitError{fmt.Sprintf("the query reads %s of data of tenant %s, the limit is %s (%s)",
		time.Duration(maxt-mint)*time.Millisecond, tenant, lim.MaxQueryLength, limits.Source(limits.FlagMaxQueryLength)),
		promql.ErrTooManySamplesRead("storage")}
}

// limitedQuerier counts the series and samples read from one tenant and
// stops the query when it reads more than the tenant's limits allow.
type limitedQuerier struct {
	storage.Querier
	tenant string
	lim    limits.Limits
	stats  *TenantStats

	mu   sync.Mutex
	sets []*countingSet
}

func (q *limitedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	s := &countingSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), q: q}
	q.mu.Lock()
	q.sets = append(q.sets, s)
	q.mu.Unlock()
	return s
}

// Close gives back the samples the sets reserved and did not read, so that
// the counts are exact, and closes the querier.
func (q *limitedQuerier) Close() error {
	q.mu.Lock()
	for _, s := range q.sets {
		q.stats.Samples.Add(-s.reserved)
		s.reserved = 0
	}
	q.mu.Unlock()
	return q.Querier.Close()
}

// limitError is a query over a tenant limit. It unwraps to the PromQL cost
// error, so that the API answers 422 cost_limit, with FluxPulse's message.
type limitError struct {
	msg   string
	inner error
}

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return e.inner }

func (q *limitedQuerier) seriesErr() error {
	return &limitError{fmt.Sprintf("the query read more than %d series of tenant %s (%s)", q.lim.MaxFetchedSeriesPerQuery, q.tenant, limits.Source(limits.FlagMaxFetchedSeries)),
		promql.ErrTooManySeries("storage")}
}

func (q *limitedQuerier) samplesErr() error {
	return &limitError{fmt.Sprintf("the query read more than %d samples of tenant %s (%s)", q.lim.MaxFetchedSamplesPerQuery, q.tenant, limits.Source(limits.FlagMaxFetchedSamples)),
		promql.ErrTooManySamplesRead("storage")}
}

// reserveChunk is how many samples a series set takes from the shared
// count at once: the per-sample cost is a decrement, and the limit is
// enforced within that many samples.
const reserveChunk = 4096

type countingSet struct {
	storage.SeriesSet
	q        *limitedQuerier
	err      error
	reserved int64 // samples counted in advance and not read yet
}

// count counts one sample and reports whether the query may go on.
func (s *countingSet) count() bool {
	if s.reserved > 0 {
		s.reserved--
		return true
	}
	max := int64(s.q.lim.MaxFetchedSamplesPerQuery)
	chunk := int64(reserveChunk)
	if max > 0 {
		chunk = min(chunk, max/16+1) // enforce small limits closely
	}
	n := s.q.stats.Samples.Add(chunk)
	s.reserved = chunk - 1
	return max <= 0 || n-chunk < max
}

func (s *countingSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	n := s.q.stats.Series.Add(1)
	if max := s.q.lim.MaxFetchedSeriesPerQuery; max > 0 && n > int64(max) {
		s.err = s.q.seriesErr()
		return false
	}
	return true
}

func (s *countingSet) At() storage.Series {
	return &countingSeries{Series: s.SeriesSet.At(), set: s}
}

func (s *countingSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

func (s *countingSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

type countingSeries struct {
	storage.Series
	set *countingSet
}

func (s *countingSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if ci, ok := it.(*countingIterator); ok {
		ci.Iterator = s.Series.Iterator(ci.Iterator)
		ci.set, ci.err = s.set, nil
		return ci
	}
	return &countingIterator{Iterator: s.Series.Iterator(it), set: s.set}
}

// countingIterator counts every sample it yields. (go vet's stdmethods
// check mistakes Seek for io.Seeker; this Seek is chunkenc.Iterator's.)
type countingIterator struct {
	chunkenc.Iterator
	set *countingSet
	err error
}

func (it *countingIterator) step(v chunkenc.ValueType) chunkenc.ValueType {
	if v != chunkenc.ValNone && !it.set.count() {
		it.err = it.set.q.samplesErr()
		return chunkenc.ValNone
	}
	return v
}

func (it *countingIterator) Next() chunkenc.ValueType {
	if it.err != nil {
		return chunkenc.ValNone
	}
	return it.step(it.Iterator.Next())
}

func (it *countingIterator) Seek(t int64) chunkenc.ValueType {
	if it.err != nil {
		return chunkenc.ValNone
	}
	return it.step(it.Iterator.Seek(t))
}

func (it *countingIterator) Err() error {
	if it.err != nil {
		return it.err
	}
	return it.Iterator.Err()
}
