package ingester

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// Push appends a validated request to the tenant's TSDB and commits it, so
// that a 2xx answer means the samples are in the WAL. Samples the TSDB
// refuses (out of order, too old, duplicates) are recorded in the Result and
// the rest is still stored; an error means nothing was stored and the sender
// should retry.
//
// The series of req must have passed distributor validation: labels sorted,
// unique, non-empty. Push does not keep req or any string in it.
func (i *Ingester) Push(ctx context.Context, tenantID string, req *remotewrite.Request) (remotewrite.Result, error) {
	var res remotewrite.Result
	t, err := i.tenant(ctx, tenantID, true)
	if err != nil {
		return res, err
	}
	defer t.release()
	lim := i.limits.Limits(tenantID)
	_, _, nex := req.Counts()
	if err := t.applyLimits(lim, nex > 0 && lim.MaxExemplars > 0); err != nil {
		return res, err
	}

	app := t.db.AppenderV2(ctx)
	exApp, ok := app.(storage.ExemplarAppenderV2)
	if !ok {
		_ = app.Rollback()
		return res, fmt.Errorf("BUG: TSDB appender %T does not append exemplars", app)
	}
	p := pusher{app: exApp, lim: lim, res: &res, b: labels.NewScratchBuilder(16), refs: t.refs, validate: req.Validate}
	for k := range req.Series {
		if err := p.series(&req.Series[k], k, t.meta); err != nil {
			_ = app.Rollback()
			return remotewrite.Result{}, err
		}
	}
	if err := app.Commit(); err != nil {
		return remotewrite.Result{}, fmt.Errorf("commit to TSDB of tenant %q: %w", tenantID, err)
	}
	for _, m := range req.Metadata {
		t.meta.add(m.FamilyName, metadata.Metadata{Type: m.Type, Help: m.Help, Unit: m.Unit}, lim.MaxMetadataPerMetric)
	}
	i.m.appended.WithLabelValues(tenantID).Add(float64(res.Samples + res.Histograms))
	if res.Exemplars > 0 {
		i.m.exemplarsStored.WithLabelValues(tenantID).Add(float64(res.Exemplars))
	}
	for reason, n := range p.rejects {
		i.m.rejected.WithLabelValues(tenantID, reason).Add(float64(n))
	}
	return res, nil
}

// pusher appends the series of one request through one appender.
type pusher struct {
	app      storage.ExemplarAppenderV2
	lim      limits.Limits
	res      *remotewrite.Result
	b        labels.ScratchBuilder
	exs      []exemplar.Exemplar
	rejects  map[string]int
	refs     *refCache
	validate remotewrite.Validator
}

// seriesState is what the pusher knows of the series being appended.
type seriesState struct {
	s     *remotewrite.Series
	ref   storage.SeriesRef
	ls    labels.Labels // built only when the head must look the series up by labels
	known bool          // found in the cache: ls is empty
}

// labels returns the series' labels, building them (a copy: nothing of the
// request body is kept) the first time they are needed.
func (p *pusher) labels(st *seriesState) labels.Labels {
	if st.ls.IsEmpty() {
		p.b.Reset()
		for _, l := range st.s.Labels {
			p.b.Add(l.Name, l.Value)
		}
		st.ls = p.b.Labels()
	}
	return st.ls
}

// start looks the series up in the cache; a series not there is validated
// and gets its labels built. It returns false when the series is refused.
func (p *pusher) start(s *remotewrite.Series, index int) (seriesState, bool) {
	st := seriesState{s: s}
	if ref, ok := p.refs.get(s.Key); ok {
		st.ref, st.known = ref, true
		return st, true
	}
	if p.validate != nil {
		if reason := p.validate.Series(s, index); reason != "" {
			p.res.Reject(1, len(s.Samples)+len(s.Histograms), reason)
			return st, false
		}
	}
	p.labels(&st)
	return st, true
}

// append appends one sample (v, or h, or fh). A cached reference whose
// series the head deleted meanwhile makes the head refuse the empty label
// set; the series is then looked up by its labels, and the cache fixed.
func (p *pusher) append(st *seriesState, sst, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) error {
	r, err := p.app.Append(st.ref, st.ls, sst, t, v, h, fh, storage.AOptions{})
	if st.known && st.ls.IsEmpty() && errors.Is(err, tsdb.ErrInvalidSample) {
		p.refs.forget(st.s.Key)
		st.ref, st.known = 0, false
		r, err = p.app.Append(0, p.labels(st), sst, t, v, h, fh, storage.AOptions{})
	}
	if r != 0 {
		st.ref = r
	}
	return err
}

func (p *pusher) series(s *remotewrite.Series, index int, meta *metadataStore) error {
	st, ok := p.start(s, index)
	if !ok {
		return nil
	}
	if p.validate != nil {
		p.validate.Samples(s, p.res)
	}
	for k, smp := range s.Samples {
		err := p.append(&st, smp.StartTimestamp, smp.Timestamp, smp.Value, nil, nil)
		if isSeriesLimitError(err) {
			// The series does not exist and may not be created: refuse the
			// rest of it at once rather than sample by sample.
			p.rejectSeries(err, len(s.Samples)-k+len(s.Histograms))
			return nil
		}
		if err := p.appendErr(err, &st, smp.Timestamp); err != nil {
			return err
		}
		if err == nil {
			p.res.Samples++
		}
	}
	for k, h := range s.Histograms {
		err := p.append(&st, h.StartTimestamp, h.Timestamp, 0, h.H, h.FH)
		if isSeriesLimitError(err) {
			p.rejectSeries(err, len(s.Histograms)-k)
			return nil
		}
		if err := p.appendErr(err, &st, h.Timestamp); err != nil {
			return err
		}
		if err == nil {
			p.res.Histograms++
		}
	}
	if !st.known && st.ref != 0 {
		p.refs.put(s.Key, st.ref)
	}
	// Exemplars may come in a series of their own; they attach to a series
	// that exists already, here or from an earlier request.
	if len(s.Exemplars) > 0 && p.lim.MaxExemplars > 0 {
		p.appendExemplars(st.ref, p.labels(&st), s.Exemplars)
	}
	if !s.Metadata.IsEmpty() {
		meta.add(familyName(metricName(s.Labels), s.Metadata.Type), metadata.Metadata{Type: s.Metadata.Type, Help: s.Metadata.Help, Unit: s.Metadata.Unit}, p.lim.MaxMetadataPerMetric)
	}
	return nil
}

func metricName(ls []labels.Label) string {
	for _, l := range ls {
		if l.Name == labels.MetricName {
			return l.Value
		}
	}
	return ""
}

// appendErr records a refused sample and returns nil, or returns the error
// when it is a fault of the store rather than of the sample.
func (p *pusher) appendErr(err error, st *seriesState, ts int64) error {
	if err == nil || errors.Is(err, (*storage.AppendPartialError)(nil)) {
		return nil
	}
	var reason string
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		reason = "out_of_order"
	case errors.Is(err, storage.ErrTooOldSample):
		reason = "too_old"
	case errors.Is(err, storage.ErrOutOfBounds):
		reason = "out_of_bounds"
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		reason = "duplicate_timestamp"
	case isHistogramError(err):
		reason = "invalid_histogram"
	default:
		return err
	}
	if p.rejects == nil {
		p.rejects = map[string]int{}
	}
	p.rejects[reason]++
	// The message is built only if it will be reported: a flood of refused
	// samples must not cost formatting each.
	p.res.RejectFunc(0, 1, func() string { return p.rejectMessage(reason, err, p.labels(st), ts) })
	return nil
}

func (p *pusher) rejectMessage(reason string, err error, ls labels.Labels, ts int64) string {
	at := time.UnixMilli(ts).UTC().Format(time.RFC3339Nano)
	switch reason {
	case "out_of_order":
		if p.lim.OutOfOrderTimeWindow > 0 {
			return fmt.Sprintf("out-of-order sample at %s for series %s: it is older than the series' newest sample", at, ls)
		}
		return fmt.Sprintf("out-of-order sample at %s for series %s: it is older than the series' newest sample and the out-of-order window is 0 (%s)", at, ls, limits.Source(limits.FlagOutOfOrderTimeWindow))
	case "too_old":
		return fmt.Sprintf("sample at %s for series %s is outside the out-of-order window of %s (%s)", at, ls, p.lim.OutOfOrderTimeWindow, limits.Source(limits.FlagOutOfOrderTimeWindow))
	case "out_of_bounds":
		return fmt.Sprintf("sample at %s for series %s is older than the oldest time this ingester still accepts (the start of its head block)", at, ls)
	case "duplicate_timestamp":
		return fmt.Sprintf("sample at %s for series %s has a different value than the sample already stored for that timestamp", at, ls)
	}
	return fmt.Sprintf("invalid native histogram at %s for series %s: %v", at, ls, err)
}

func (p *pusher) rejectSeries(err error, samples int) {
	if p.rejects == nil {
		p.rejects = map[string]int{}
	}
	p.rejects["series_limit"] += samples
	p.res.Reject(1, samples, err.Error())
}

func isSeriesLimitError(err error) bool {
	_, ok := errors.AsType[*seriesLimitError](err)
	return ok
}

func isHistogramError(err error) bool {
	_, ok := errors.AsType[histogram.Error](err)
	return ok
}

func (p *pusher) appendExemplars(ref storage.SeriesRef, ls labels.Labels, in []remotewrite.Exemplar) {
	p.exs = p.exs[:0]
	for _, e := range in {
		p.b.Reset()
		for _, l := range e.Labels {
			p.b.Add(l.Name, l.Value)
		}
		p.b.Sort()
		p.exs = append(p.exs, exemplar.Exemplar{Labels: p.b.Labels(), Value: e.Value, Ts: e.Timestamp, HasTs: true})
	}
	slices.SortFunc(p.exs, exemplar.Compare)
	_, err := p.app.AppendExemplars(ref, ls, p.exs)
	failed := 0
	if pe, ok := errors.AsType[*storage.AppendPartialError](err); ok {
		failed = len(pe.ExemplarErrors)
	} else if err != nil {
		// Exemplars are best effort, as in Prometheus: never fail the push.
		failed = len(p.exs)
	}
	p.res.Exemplars += max(0, len(p.exs)-failed)
}
