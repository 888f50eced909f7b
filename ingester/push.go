package ingester

import (
	"context"
	"errors"
	"fmt"
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
	t.touch(time.Now())
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
	o := i.orders.get(req)
	defer i.orders.put(o)
	p := pusher{app: exApp, db: t.db, head: t.db.Head(), lim: lim, res: &res, b: labels.NewScratchBuilder(16),
		refs: t.refs, validate: req.Validate, order: o}
	if req.TrackSeries {
		res.TrackSeries()
	}
	t.refs.getAll(req.Series, o.cached, o.byShard)
	for k := range req.Series {
		s := &req.Series[k]
		res.BeginSeries(k, len(s.Samples), len(s.Histograms), len(s.Exemplars))
		if err := p.series(ctx, s, k, t.meta); err != nil {
			_ = app.Rollback()
			return remotewrite.Result{}, err
		}
	}
	res.EndSeries()
	if len(o.found) > 0 {
		t.refs.putAll(req.Series, o.cached, o.found, o.byShard)
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
	db       *tsdb.DB
	head     *tsdb.Head
	lim      limits.Limits
	res      *remotewrite.Result
	b        labels.ScratchBuilder
	exs      []exemplar.Exemplar
	rejects  map[string]int
	refs     *refCache
	validate remotewrite.Validator

	// What the request appended so far, and where the push is in it: the
	// entry, and how many of its samples and histograms it kept.
	order       *order
	entry       int
	kept, keptH int
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
		// start decoded them once already: a series found in the cache
		// was sent with the same label bytes before.
		_ = p.buildLabels(st)
	}
	return st.ls
}

// buildLabels builds the series' labels into st.ls. Sent by a distributor,
// they may still be encoded (DecodeWireLazy), and malformed.
func (p *pusher) buildLabels(st *seriesState) error {
	p.b.Reset()
	err := st.s.AppendLabels(&p.b)
	st.ls = p.b.Labels()
	return err
}

// start looks the series up in the cache; a series not there is validated
// and gets its labels built. It returns false when the series is refused.
func (p *pusher) start(s *remotewrite.Series, index int) (seriesState, bool) {
	st := seriesState{s: s}
	if ref := p.order.cached[index]; ref != 0 {
		st.ref, st.known = ref, true
		return st, true
	}
	if p.validate != nil {
		if reason := p.validate.Series(s, index); reason != "" {
			p.res.Reject(1, len(s.Samples)+len(s.Histograms), reason)
			return st, false
		}
	}
	// st.ref 0: the head finds or creates the series by its labels.
	if err := p.buildLabels(&st); err != nil {
		p.res.Reject(1, len(s.Samples)+len(s.Histograms), "malformed labels: "+err.Error())
		return st, false
	}
	return st, true
}

// add appends one sample of the series, unless what the request appended
// before makes the head drop it at Commit: then it is refused (or, repeating
// a sample, counted as stored without being appended). It reports whether
// the sample counts as stored; an error is a series limit's refusal or a
// fault of the store.
//
// A cached reference whose series the head deleted meanwhile makes the head
// refuse the empty label set; the series is then found by its labels, the
// cache fixed, and the sample judged again.
//
// A series without a reference yet (not cached: new, or sent under another
// key) is not looked up before its first sample: the head finds or creates
// it by its labels in Append, and the sample is judged afterwards, by the
// reference Append returned. Only a series the request already appended
// under another entry (the same labels sent twice, encoded differently) can
// be refused then; such a sample is in the appender's batch, and Commit
// drops it exactly as judge predicts (it models Commit), so the answer is
// the same as if it had been judged first. This saves the head a second
// hash lookup for every new series (#18).
func (p *pusher) add(st *seriesState, sst int64, v value) (bool, error) {
	for {
		fresh := st.ref == 0
		if !fresh {
			switch reason, noop := p.judge(p.order.find(st.ref), v); {
			case noop:
				return true, nil
			case reason != "":
				p.refuse(reason, nil, st, v.t)
				return false, nil
			}
		}
		r, err := p.app.Append(st.ref, st.ls, sst, v.t, v.v, v.h, v.fh, storage.AOptions{})
		if st.known && st.ls.IsEmpty() && errors.Is(err, tsdb.ErrInvalidSample) {
			p.refs.forget(st.s.Key)
			st.known, st.ref = false, 0
			p.labels(st)
			continue
		}
		if r != 0 {
			st.ref = r
		}
		if err != nil && !errors.Is(err, (*storage.AppendPartialError)(nil)) {
			if isSeriesLimitError(err) {
				return false, err
			}
			return false, p.appendErr(err, st, v.t)
		}
		if fresh {
			switch reason, noop := p.judge(p.order.find(st.ref), v); {
			case noop:
				return true, nil
			case reason != "":
				p.refuse(reason, nil, st, v.t)
				return false, nil
			}
		}
		p.order.add(st.ref, p.entry, v)
		return true, nil
	}
}

// judge returns why v must be refused given what the request appended to
// its series before (s, nil if nothing), or noop when v repeats such a
// sample; see order.go.
func (p *pusher) judge(s *seenSeries, v value) (reason string, noop bool) {
	if s == nil || v.t > s.newest.t {
		return "", false
	}
	if v.t == s.newest.t {
		if v.same(s.newest) {
			return "", true
		}
		return "duplicate_timestamp", false
	}
	window := p.lim.OutOfOrderTimeWindow.Milliseconds()
	if window <= 0 {
		if minValid, ok := p.head.AppendableMinValidTime(); ok && v.t < minValid {
			return "out_of_bounds", false
		}
		return "out_of_order", false
	}
	if !s.tracked {
		p.order.track(s, p.entry, p.kept, p.keptH)
	}
	if old, ok := p.order.appended[seenKey{s.ref, v.t}]; ok {
		if v.same(old) {
			return "", true
		}
		return "duplicate_timestamp", false
	}
	// Commit inserts it out of order only within the window of the head's
	// newest time when the appender was made; now it is as new or newer.
	if v.t < p.head.MaxTime()-window {
		return "too_old", false
	}
	return "", false
}

func (p *pusher) series(ctx context.Context, s *remotewrite.Series, index int, meta *metadataStore) error {
	st, ok := p.start(s, index)
	if !ok {
		return nil
	}
	if p.validate != nil {
		p.validate.Samples(s, p.res)
	}
	p.entry, p.kept, p.keptH = index, 0, 0
	for k, smp := range s.Samples {
		ok, err := p.add(&st, smp.StartTimestamp, value{t: smp.Timestamp, v: smp.Value})
		if isSeriesLimitError(err) {
			// The series does not exist and may not be created: refuse the
			// rest of it at once rather than sample by sample.
			p.rejectSeries(err, len(s.Samples)-k+len(s.Histograms))
			s.Samples, s.Histograms = s.Samples[:p.kept], nil
			return nil
		}
		if err != nil {
			return err
		}
		if ok {
			// Keep only what was stored: what the request appended to the
			// series is read back from its entries (order.track).
			s.Samples[p.kept] = smp
			p.kept++
			p.res.Samples++
		}
	}
	s.Samples = s.Samples[:p.kept]
	for k, h := range s.Histograms {
		ok, err := p.add(&st, h.StartTimestamp, value{t: h.Timestamp, h: h.H, fh: h.FH})
		if isSeriesLimitError(err) {
			p.rejectSeries(err, len(s.Histograms)-k)
			s.Histograms = s.Histograms[:p.keptH]
			return nil
		}
		if err != nil {
			return err
		}
		if ok {
			s.Histograms[p.keptH] = h
			p.keptH++
			p.res.Histograms++
		}
	}
	s.Histograms = s.Histograms[:p.keptH]
	if !st.known && st.ref != 0 && !s.Key.IsZero() {
		p.order.cached[index] = st.ref
		p.order.found = append(p.order.found, int32(index))
	}
	if len(s.Exemplars) > 0 && p.lim.MaxExemplars > 0 {
		p.appendExemplars(ctx, &st, s.Exemplars)
	}
	if !s.Metadata.IsEmpty() {
		meta.add(familyName(s.MetricName(), s.Metadata.Type), metadata.Metadata{Type: s.Metadata.Type, Help: s.Metadata.Help, Unit: s.Metadata.Unit}, p.lim.MaxMetadataPerMetric)
	}
	return nil
}

// appendErr records a sample the head refused and returns nil, or returns
// the error when it is a fault of the store rather than of the sample.
func (p *pusher) appendErr(err error, st *seriesState, ts int64) error {
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
	p.refuse(reason, err, st, ts)
	return nil
}

// refuse records a refused sample of the series at ts.
func (p *pusher) refuse(reason string, err error, st *seriesState, ts int64) {
	if p.rejects == nil {
		p.rejects = map[string]int{}
	}
	p.rejects[reason]++
	// The message is built only if it will be reported: a flood of refused
	// samples must not cost formatting each.
	p.res.RejectFunc(0, 1, func() string { return p.rejectMessage(reason, err, p.labels(st), ts) })
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
