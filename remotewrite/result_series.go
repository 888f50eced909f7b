package remotewrite

// SeriesOutcome is what a push did with one series of its request, when it
// did not store all that was sent: the stored counts and the refusals.
type SeriesOutcome struct {
	Index                           int
	Samples, Histograms, Exemplars  int
	RejectedSeries, RejectedSamples int
}

type seriesTracker struct {
	open bool
	cur  SeriesOutcome // the series being pushed: its index and the counters when it began
	sent [3]int        // its samples, histograms and exemplars as sent
	out  []SeriesOutcome
}

// TrackSeries makes r keep an outcome for every series that is not stored
// whole, delimited by BeginSeries and EndSeries. An ingester answering a
// distributor does, so that the distributor, which writes each series to
// several ingesters, can count each series once.
func (r *Result) TrackSeries() {
	if r.tracker == nil {
		r.tracker = &seriesTracker{}
	}
}

// BeginSeries starts series index of the request, sent with the given
// numbers of samples, histograms and exemplars: what r records from now on
// is that series', until EndSeries or the next BeginSeries. Without
// TrackSeries it does nothing.
func (r *Result) BeginSeries(index, samples, histograms, exemplars int) {
	t := r.tracker
	if t == nil {
		return
	}
	r.EndSeries()
	t.open = true
	t.cur = SeriesOutcome{Index: index, Samples: r.Samples, Histograms: r.Histograms, Exemplars: r.Exemplars,
		RejectedSeries: r.RejectedSeries, RejectedSamples: r.RejectedSamples}
	t.sent = [3]int{samples, histograms, exemplars}
}

// EndSeries ends the series BeginSeries started.
func (r *Result) EndSeries() {
	t := r.tracker
	if t == nil || !t.open {
		return
	}
	t.open = false
	o := SeriesOutcome{Index: t.cur.Index, Samples: r.Samples - t.cur.Samples, Histograms: r.Histograms - t.cur.Histograms,
		Exemplars: r.Exemplars - t.cur.Exemplars, RejectedSeries: r.RejectedSeries - t.cur.RejectedSeries,
		RejectedSamples: r.RejectedSamples - t.cur.RejectedSamples}
	if o.Samples == t.sent[0] && o.Histograms == t.sent[1] && o.Exemplars == t.sent[2] && o.RejectedSeries == 0 && o.RejectedSamples == 0 {
		return // stored whole: the common case is not recorded
	}
	t.out = append(t.out, o)
}

// SeriesOutcomes returns the outcomes of the series that were not stored
// whole, in the order they were pushed.
func (r *Result) SeriesOutcomes() []SeriesOutcome {
	if r.tracker == nil {
		return nil
	}
	return r.tracker.out
}

// Reasons returns the refusal messages kept (at most MaxReportedErrors)
// and how many more were only counted.
func (r *Result) Reasons() (kept []string, more int) { return r.errs, r.dropped }

// AddDropped counts n more refusal messages that were not kept, as those
// of another Result whose messages were merged one by one.
func (r *Result) AddDropped(n int) { r.dropped += n }
