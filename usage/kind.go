package usage

import (
	"fmt"
	"time"
)

// Kind is a usage counter.
type Kind uint8

// The counters kept per tenant. Their order is the column order of reports.
const (
	SamplesReceived    Kind = iota // float samples accepted by a push
	HistogramsReceived             // native histogram samples accepted by a push
	ExemplarsReceived              // exemplars accepted by a push
	BytesReceived                  // push request bodies, as received (compressed)
	SamplesRejected                // samples and histograms a push refused
	Queries                        // query API requests
	SamplesQueried                 // samples a query's evaluation touched
	SeriesQueried                  // series a query or series request fetched
	numKinds
)

var kindNames = [numKinds]string{
	"samples_received", "histograms_received", "exemplars_received", "bytes_received",
	"samples_rejected", "queries", "samples_queried", "series_queried",
}

// String returns the kind's name as used in metrics, files and reports,
// such as "samples_received".
func (k Kind) String() string {
	if k >= numKinds {
		return fmt.Sprintf("Kind(%d)", k)
	}
	return kindNames[k]
}

// Gauges are a tenant's sampled figures.
type Gauges struct {
	ActiveSeries int64 // series in the ingesters' heads
	StoredBytes  int64 // bytes the tenant keeps in storage
}

// GaugeFunc returns the current gauges of every tenant that has any. The
// Recorder calls it from Run: when Run starts, when an hour closes and on
// Flush. It must be safe to call from another goroutine.
type GaugeFunc func() map[string]Gauges

// Usage is one tenant's usage in one hour: the counters' increase in that
// hour and the gauges' latest sample. Field order is report column order.
type Usage struct {
	SamplesReceived    int64 `json:"samples_received"`
	HistogramsReceived int64 `json:"histograms_received"`
	ExemplarsReceived  int64 `json:"exemplars_received"`
	BytesReceived      int64 `json:"bytes_received"`
	SamplesRejected    int64 `json:"samples_rejected"`
	Queries            int64 `json:"queries"`
	SamplesQueried     int64 `json:"samples_queried"`
	SeriesQueried      int64 `json:"series_queried"`
	ActiveSeries       int64 `json:"active_series"`
	StoredBytes        int64 `json:"stored_bytes"`
}

// Counter returns the counter of kind k, or nil for an unknown kind.
func (u *Usage) Counter(k Kind) *int64 {
	switch k {
	case SamplesReceived:
		return &u.SamplesReceived
	case HistogramsReceived:
		return &u.HistogramsReceived
	case ExemplarsReceived:
		return &u.ExemplarsReceived
	case BytesReceived:
		return &u.BytesReceived
	case SamplesRejected:
		return &u.SamplesRejected
	case Queries:
		return &u.Queries
	case SamplesQueried:
		return &u.SamplesQueried
	case SeriesQueried:
		return &u.SeriesQueried
	}
	return nil
}

// Row is one line of a usage report: one tenant in one hour.
type Row struct {
	Hour   time.Time `json:"hour"`   // start of the hour, UTC
	Tenant string    `json:"tenant"` // tenant ID
	// Partial is set when the figures were taken before the hour ended:
	// the hour in progress, or the hour in which the server stopped (its
	// figures then cover the hour up to the stop).
	Partial bool `json:"partial"`
	Usage
}
