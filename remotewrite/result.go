package remotewrite

import (
	"fmt"
	"strings"
)

// MaxReportedErrors is how many rejection messages a Result keeps; the rest
// are only counted.
const MaxReportedErrors = 10

// Result is what a push stored and what it refused, so that the response can
// say both. Refusals are never retryable: a retryable fault is an error
// returned next to the Result instead.
type Result struct {
	// Stored counts what was written: the figures of the
	// X-Prometheus-Remote-Write-*-Written headers.
	Samples, Histograms, Exemplars int

	// RejectedSeries counts series refused as a whole; RejectedSamples counts
	// float and histogram samples refused, those of refused series included.
	RejectedSeries, RejectedSamples int

	errs    []string
	dropped int

	// tracker keeps per-series outcomes once TrackSeries is called.
	tracker *seriesTracker
}

// Reject records one refusal: series refused as a whole (0 or 1), samples
// refused, and the reason, which should name the series and the limit.
func (r *Result) Reject(series, samples int, reason string) {
	r.RejectedSeries += series
	r.RejectedSamples += samples
	if len(r.errs) < MaxReportedErrors {
		r.errs = append(r.errs, reason)
	} else {
		r.dropped++
	}
}

// RejectFunc is Reject for hot paths: reason is called only when the
// message will be kept, so a flood of refused samples costs no formatting.
func (r *Result) RejectFunc(series, samples int, reason func() string) {
	if len(r.errs) < MaxReportedErrors {
		r.Reject(series, samples, reason())
		return
	}
	r.RejectedSeries += series
	r.RejectedSamples += samples
	r.dropped++
}

// Rejected reports whether anything was refused.
func (r *Result) Rejected() bool { return len(r.errs) > 0 }

// Merge adds o's figures and reasons to r.
func (r *Result) Merge(o Result) {
	r.Samples += o.Samples
	r.Histograms += o.Histograms
	r.Exemplars += o.Exemplars
	r.RejectedSeries += o.RejectedSeries
	r.RejectedSamples += o.RejectedSamples
	for _, e := range o.errs {
		if len(r.errs) < MaxReportedErrors {
			r.errs = append(r.errs, e)
		} else {
			r.dropped++
		}
	}
	r.dropped += o.dropped
}

// Message summarises the refusals for an HTTP response body.
func (r *Result) Message(totalSeries int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rejected %d of %d series and %d samples; stored %d samples, %d histograms, %d exemplars",
		r.RejectedSeries, totalSeries, r.RejectedSamples, r.Samples, r.Histograms, r.Exemplars)
	for _, e := range r.errs {
		b.WriteString("\n")
		b.WriteString(e)
	}
	if r.dropped > 0 {
		fmt.Fprintf(&b, "\n(and %d more)", r.dropped)
	}
	return b.String()
}
