package ingester

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/fluxpulse/fluxpulse/limits"
)

// seriesLimiter enforces a tenant's active-series limits in its TSDB head
// through the head's series lifecycle callbacks: PreCreation refuses a new
// series over a limit, PostCreation and PostDeletion keep the counts.
// Limits are not enforced during WAL replay, which must restore every series.
type seriesLimiter struct {
	tenant    string
	limits    func() limits.Limits
	enforcing atomic.Bool
	total     atomic.Int64

	mu        sync.Mutex
	perMetric map[string]int

	// onDelete, if set, is told how many series the head deleted.
	onDelete func(n int)
	// share, if set, spreads max_series over the ingesters of a cluster.
	share SeriesShare
}

func newSeriesLimiter(tenant string, lim func() limits.Limits) *seriesLimiter {
	return &seriesLimiter{tenant: tenant, limits: lim, perMetric: map[string]int{}}
}

// seriesLimitError refuses one new series. It is not retryable.
type seriesLimitError struct{ msg string }

func (e *seriesLimitError) Error() string { return e.msg }

func (l *seriesLimiter) PreCreation(ls labels.Labels) error {
	if !l.enforcing.Load() {
		return nil
	}
	lim := l.limits()
	if lim.MaxSeries > 0 {
		if msg := l.overMaxSeries(ls, lim.MaxSeries); msg != "" {
			return &seriesLimitError{msg}
		}
	}
	if lim.MaxSeriesPerMetric > 0 {
		name := ls.Get(labels.MetricName)
		l.mu.Lock()
		n := l.perMetric[name]
		l.mu.Unlock()
		if n >= lim.MaxSeriesPerMetric {
			return &seriesLimitError{fmt.Sprintf("series %s not created: metric %q has %d active series, the limit is %d (%s)",
				ls, name, n, lim.MaxSeriesPerMetric, limits.Source(limits.FlagMaxSeriesPerMetric))}
		}
	}
	return nil
}

// overMaxSeries says why a new series would exceed max_series, or "". In a
// cluster the limit is the tenant's as a whole: this ingester holds
// replicas/ingesters of the tenant's series and enforces that share.
func (l *seriesLimiter) overMaxSeries(ls labels.Labels, max int) string {
	n := l.total.Load()
	if l.share == nil {
		if n < int64(max) {
			return ""
		}
		return fmt.Sprintf("series %s not created: the tenant has %d active series, the limit is %d (%s)",
			ls, n, max, limits.Source(limits.FlagMaxSeries))
	}
	replicas, ingesters := l.share(l.tenant)
	local := int64(max)
	if ingesters > replicas && replicas > 0 {
		local = (int64(max)*int64(replicas) + int64(ingesters) - 1) / int64(ingesters)
	}
	if n < local {
		return ""
	}
	return fmt.Sprintf("series %s not created: the tenant's limit is %d active series across the cluster (%s); this ingester holds its share of %d (each series is on %d of the %d ingesters) and has %d",
		ls, max, limits.Source(limits.FlagMaxSeries), local, replicas, ingesters, n)
}

func (l *seriesLimiter) PostCreation(ls labels.Labels) {
	l.total.Add(1)
	name := ls.Get(labels.MetricName)
	l.mu.Lock()
	if n, ok := l.perMetric[name]; ok {
		l.perMetric[name] = n + 1
	} else {
		l.perMetric[strings.Clone(name)] = 1
	}
	l.mu.Unlock()
}

func (l *seriesLimiter) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	if l.onDelete != nil {
		l.onDelete(len(deleted))
	}
	l.total.Add(-int64(len(deleted)))
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ls := range deleted {
		name := ls.Get(labels.MetricName)
		if n := l.perMetric[name]; n <= 1 {
			delete(l.perMetric, name)
		} else {
			l.perMetric[name] = n - 1
		}
	}
}
