package deletion

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// State is where a request is in its life.
type State string

// The states of a request.
const (
	// StatePending: made, not carried out everywhere yet. Reads hide it.
	StatePending State = "pending"
	// StateProcessed: no object in the bucket holds a sample it deletes
	// and the ingesters' heads are tombstoned. Reads still hide it.
	StateProcessed State = "processed"
	// StateCancelled: cancelled within its cancel period; it deletes
	// nothing and reads no longer hide it.
	StateCancelled State = "cancelled"
)

// Request is one request to delete series of a tenant. Times are UTC, in
// milliseconds; Start and End are inclusive.
type Request struct {
	ID        string   `json:"request_id"`
	Tenant    string   `json:"tenant"`
	Selectors []string `json:"selectors"`
	// Start and End bound the deleted samples' timestamps, in Unix
	// milliseconds, both inclusive.
	Start            int64     `json:"start_ms"`
	End              int64     `json:"end_ms"`
	CreatedAt        time.Time `json:"created_at"`
	CreatedBy        string    `json:"created_by"`
	CancellableUntil time.Time `json:"cancellable_until"`
	State            State     `json:"state"`
	CancelledAt      time.Time `json:"cancelled_at,omitzero"`
	CancelledBy      string    `json:"cancelled_by,omitempty"`
	// HeadsAppliedAt is when every ingester tombstoned the request.
	HeadsAppliedAt time.Time `json:"heads_applied_at,omitzero"`
	ProcessedAt    time.Time `json:"processed_at,omitzero"`
	// BlocksRewritten counts the blocks of the bucket rewritten without
	// the deleted samples.
	BlocksRewritten int `json:"blocks_rewritten,omitzero"`

	matchers [][]*labels.Matcher // parsed Selectors
}

// Matchers returns the parsed selectors: a series is deleted if it matches
// every matcher of any of them.
func (r *Request) Matchers() [][]*labels.Matcher { return r.matchers }

// Matches reports whether the series ls is one the request deletes from.
func (r *Request) Matches(ls labels.Labels) bool {
	for _, ms := range r.matchers {
		if matchAll(ms, ls) {
			return true
		}
	}
	return false
}

func matchAll(ms []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Overlaps reports whether the request deletes anything in [mint, maxt].
func (r *Request) Overlaps(mint, maxt int64) bool { return r.Start <= maxt && mint <= r.End }

// Due reports whether the request's cancel period has passed at now: it
// is to be carried out.
func (r *Request) Due(now time.Time) bool {
	return r.State == StatePending && !now.Before(r.CancellableUntil)
}

// Hides reports whether reads must hide what the request matches.
func (r *Request) Hides() bool { return r.State == StatePending || r.State == StateProcessed }

// Parse parses Selectors. A request from NewRequest or the Store is
// parsed already; one built by hand (received over the network) is not.
func (r *Request) Parse() error {
	p := parser.NewParser(parser.Options{})
	r.matchers = make([][]*labels.Matcher, 0, len(r.Selectors))
	for _, s := range r.Selectors {
		ms, err := p.ParseMetricSelector(s)
		if err != nil {
			return fmt.Errorf("deletion request %s: selector %q: %w", r.ID, s, err)
		}
		r.matchers = append(r.matchers, ms)
	}
	return nil
}

// Interval is one deleted time range, inclusive.
type Interval struct{ Mint, Maxt int64 }

// Intervals returns the ranges the requests delete from the series ls,
// sorted and merged, clipped to [mint, maxt]. Only requests that Hide
// count.
func Intervals(reqs []Request, ls labels.Labels, mint, maxt int64) []Interval {
	var out []Interval
	for k := range reqs {
		r := &reqs[k]
		if !r.Hides() || !r.Overlaps(mint, maxt) || !r.Matches(ls) {
			continue
		}
		out = addInterval(out, Interval{max(r.Start, mint), min(r.End, maxt)})
	}
	return out
}

// addInterval adds iv to the sorted, disjoint ivs, merging what overlaps
// or touches it.
func addInterval(ivs []Interval, iv Interval) []Interval {
	out := make([]Interval, 0, len(ivs)+1)
	placed := false
	for _, cur := range ivs {
		switch {
		case cur.Maxt < iv.Mint && cur.Maxt+1 < iv.Mint: // wholly before
			out = append(out, cur)
		case cur.Mint > iv.Maxt && cur.Mint-1 > iv.Maxt: // wholly after
			if !placed {
				out, placed = append(out, iv), true
			}
			out = append(out, cur)
		default:
			iv = Interval{min(iv.Mint, cur.Mint), max(iv.Maxt, cur.Maxt)}
		}
	}
	if !placed {
		out = append(out, iv)
	}
	return out
}

// InIntervals reports whether t lies in one of the sorted ivs.
func InIntervals(ivs []Interval, t int64) bool {
	for _, iv := range ivs {
		if t < iv.Mint {
			return false
		}
		if t <= iv.Maxt {
			return true
		}
	}
	return false
}

// ErrInvalid is wrapped by every refusal of a request's parameters: the
// API answers it with 400.
var ErrInvalid = errors.New("invalid deletion request")

// ParseTime reads a time parameter as the Prometheus API does: RFC 3339,
// or Unix seconds with an optional fraction. It returns Unix milliseconds.
func ParseTime(s string) (int64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		// ±2^53 ms is ±285,000 years: far beyond any sample.
		if math.IsNaN(f) || math.Abs(f) > 1<<53/1000 {
			return 0, fmt.Errorf("%q: Unix seconds out of range", s)
		}
		return int64(math.Round(f * 1000)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither RFC 3339 (2026-05-01T10:00:00Z) nor Unix seconds", s)
	}
	return t.UnixMilli(), nil
}
