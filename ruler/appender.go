package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/logthrottle"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// Pusher stores samples for a tenant exactly as a remote write would: the
// distributor validates them against the tenant's limits and hands them to
// the ingesters. Refusals are reported in the Result; an error means nothing
// was stored. Push must not keep req or anything in it after it returns, and
// must be safe for concurrent use.
type Pusher interface {
	Push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error)
}

// PusherFunc adapts a function to Pusher.
type PusherFunc func(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error)

// Push calls f.
func (f PusherFunc) Push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error) {
	return f(ctx, tenant, req)
}

// ErrRefused is wrapped by Commit's error when the Pusher refused samples
// of the batch that were not staleness markers.
var ErrRefused = errors.New("rule results refused")

// writeMetrics count what rule evaluations write, per tenant.
type writeMetrics struct {
	samples  *prometheus.CounterVec
	refused  *prometheus.CounterVec
	failures *prometheus.CounterVec
}

func newWriteMetrics(reg prometheus.Registerer) *writeMetrics {
	m := &writeMetrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_ruler_write_samples_total",
			Help: "Samples of rule results (recording rules, ALERTS, ALERTS_FOR_STATE, staleness markers) stored through the distributor."}, []string{"tenant"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_ruler_write_refused_samples_total",
			Help: "Samples of rule results the distributor refused (limits, out of order, duplicates)."}, []string{"tenant"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_ruler_write_failures_total",
			Help: "Batches of rule results that were not stored at all (rate limit, storage fault)."}, []string{"tenant"}),
	}
	if reg != nil {
		reg.MustRegister(m.samples, m.refused, m.failures)
	}
	return m
}

func (m *writeMetrics) forget(tenant string) {
	m.samples.DeleteLabelValues(tenant)
	m.refused.DeleteLabelValues(tenant)
	m.failures.DeleteLabelValues(tenant)
}

// appendable is the storage.AppendableV2 of one tenant's rule manager: its
// appenders collect one rule evaluation's results and Commit pushes them as
// one request.
type appendable struct {
	tenant  string
	pusher  Pusher
	metrics *writeMetrics
	logs    *logthrottle.Throttle
	logger  *slog.Logger
}

var _ storage.AppendableV2 = (*appendable)(nil)

// batchPool recycles the buffers of appenders: the rules manager creates one
// appender per rule and evaluation.
var batchPool = sync.Pool{New: func() any { return new(batch) }}

// AppenderV2 returns an appender bound to ctx, which carries the tenant and
// the deadline of the evaluation.
func (a *appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{ctx: ctx, a: a, b: batchPool.Get().(*batch)}
}

// batch holds appended samples until Commit. Labels of all series share one
// backing array; each entry points into it and into samples or hists.
type batch struct {
	labels  []labels.Label
	entries []entry
	samples []remotewrite.Sample
	hists   []remotewrite.Histogram
	stale   int
	req     remotewrite.Request
}

type entry struct {
	lblStart, lblEnd int
	hist             bool
	index            int
}

func (b *batch) reset() {
	clear(b.labels) // drop references to label strings
	clear(b.hists)
	b.labels, b.entries, b.samples, b.hists = b.labels[:0], b.entries[:0], b.samples[:0], b.hists[:0]
	b.stale = 0
	b.req.Reset()
}

// appender is one transaction. The context is kept because Commit, which
// pushes, takes none: the appender lives for one rule evaluation only.
type appender struct {
	ctx context.Context
	a   *appendable
	b   *batch
}

var _ storage.AppenderV2 = (*appender)(nil)

// Append adds one sample to the batch. It never fails: validation happens
// in the distributor at Commit. The returned reference is always 0, as
// references of a remote store mean nothing to the caller.
func (ap *appender) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	b := ap.b
	if b == nil {
		return 0, errors.New("BUG: append after commit or rollback")
	}
	e := entry{lblStart: len(b.labels)}
	ls.Range(func(l labels.Label) { b.labels = append(b.labels, l) })
	e.lblEnd = len(b.labels)
	switch {
	case h != nil || fh != nil:
		e.hist, e.index = true, len(b.hists)
		b.hists = append(b.hists, remotewrite.Histogram{Timestamp: t, StartTimestamp: st, H: h, FH: fh})
	default:
		e.index = len(b.samples)
		b.samples = append(b.samples, remotewrite.Sample{Timestamp: t, StartTimestamp: st, Value: v})
		if value.IsStaleNaN(v) {
			b.stale++
		}
	}
	b.entries = append(b.entries, e)
	return 0, nil
}

// Commit pushes the batch as one request. A refusal of staleness markers
// alone (a series another rule still writes, a marker older than the
// newest sample) is counted and not an error, as in Prometheus; any other
// refusal is counted and returned wrapping ErrRefused, so that the rule
// shows it as its last error.
func (ap *appender) Commit() error {
	b := ap.b
	if b == nil {
		return errors.New("BUG: commit after commit or rollback")
	}
	defer ap.release()
	if len(b.entries) == 0 {
		return nil
	}
	req := b.request()
	total := len(b.samples) + len(b.hists)
	a := ap.a
	res, err := a.pusher.Push(ap.ctx, a.tenant, req)
	if err != nil {
		a.metrics.failures.WithLabelValues(a.tenant).Inc()
		return fmt.Errorf("write %d rule result samples of tenant %s: %w", total, a.tenant, err)
	}
	a.metrics.samples.WithLabelValues(a.tenant).Add(float64(res.Samples + res.Histograms))
	if !res.Rejected() {
		return nil
	}
	a.metrics.refused.WithLabelValues(a.tenant).Add(float64(res.RejectedSamples))
	msg := res.Message(len(b.entries))
	if res.RejectedSamples <= b.stale {
		if a.logs.Allow(a.tenant) {
			a.logger.Debug("staleness markers of rule results refused", "tenant", a.tenant, "reason", msg)
		}
		return nil
	}
	if a.logs.Allow(a.tenant) {
		a.logger.Warn("rule results refused", "tenant", a.tenant, "reason", msg)
	}
	return fmt.Errorf("%w: %s", ErrRefused, msg)
}

// request builds the remote-write request of the batch. It points into the
// batch's buffers, which stay untouched until the push has returned.
func (b *batch) request() *remotewrite.Request {
	req := &b.req
	req.Version = remotewrite.V2
	for _, e := range b.entries {
		s := remotewrite.Series{Labels: b.labels[e.lblStart:e.lblEnd:e.lblEnd]}
		if e.hist {
			s.Histograms = b.hists[e.index : e.index+1 : e.index+1]
		} else {
			s.Samples = b.samples[e.index : e.index+1 : e.index+1]
		}
		req.Series = append(req.Series, s)
	}
	return req
}

// Rollback drops the batch.
func (ap *appender) Rollback() error {
	if ap.b != nil {
		ap.release()
	}
	return nil
}

func (ap *appender) release() {
	ap.b.reset()
	batchPool.Put(ap.b)
	ap.b = nil
}
