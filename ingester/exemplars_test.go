package ingester

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// exemplarsOf returns the exemplars stored for the series named name.
func exemplarsOf(t *testing.T, ing *Ingester, tenant, name string) int {
	t.Helper()
	q, err := ing.ExemplarQuerier(t.Context(), tenant)
	if err != nil || q == nil {
		t.Fatalf("exemplar querier: %v", err)
	}
	res, err := q.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", name)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range res {
		n += len(r.Exemplars)
	}
	return n
}

// TestExemplarsWithoutSamples sends exemplars for series that have no
// sample in the request, as Prometheus sends them, in entries of their own
// (#12: answered with 0 exemplars written, and dropped). They are stored,
// the series created when the head has none, and survive a restart; the
// answer counts them.
func TestExemplarsWithoutSamples(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UnixMilli()
	ex := func(trace string, at int64) []remotewrite.Exemplar {
		return []remotewrite.Exemplar{{Labels: []labels.Label{{Name: "trace_id", Value: trace}}, Value: 42, Timestamp: at}}
	}
	only := func(name string, e []remotewrite.Exemplar) remotewrite.Series {
		return remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "j"}}, Exemplars: e}
	}
	func() {
		ing := testIngester(t, dir, nil)
		// A tenant's first request: nothing in its head yet.
		res, err := ing.Push(t.Context(), "t", &remotewrite.Request{Series: []remotewrite.Series{only("orphan_metric", ex("a", now))}})
		if err != nil || res.Exemplars != 1 || res.Rejected() {
			t.Fatalf("orphan exemplar: %v, %d stored, %s", err, res.Exemplars, res.Message(1))
		}
		// An exemplar entry before the samples of a new series, in one
		// request.
		withSamples := only("later_metric", nil)
		withSamples.Samples = []remotewrite.Sample{{Timestamp: now, Value: 1}}
		req := &remotewrite.Request{Series: []remotewrite.Series{only("later_metric", ex("b", now)), withSamples}}
		if res, err := ing.Push(t.Context(), "t", req); err != nil || res.Exemplars != 1 || res.Samples != 1 || res.Rejected() {
			t.Fatalf("exemplar before samples: %v, %d exemplars %d samples, %s", err, res.Exemplars, res.Samples, res.Message(2))
		}
		if n := exemplarsOf(t, ing, "t", "orphan_metric"); n != 1 {
			t.Fatalf("orphan exemplars stored: %d, want 1", n)
		}
		if n := stored(t, ing, "t", "orphan_metric"); n != 0 {
			t.Fatalf("the orphan's series got %d samples, want none", n)
		}
		if err := ing.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	ing := testIngester(t, dir, nil)
	if n := exemplarsOf(t, ing, "t", "orphan_metric"); n != 1 {
		t.Fatalf("after a restart, orphan exemplars: %d, want 1", n)
	}
	if n := exemplarsOf(t, ing, "t", "later_metric"); n != 1 {
		t.Fatalf("after a restart, exemplars sent before their samples: %d, want 1", n)
	}
}

// TestOrphanExemplarsOverTheSeriesLimit refuses exemplars whose series may
// not be created, naming the limit.
func TestOrphanExemplarsOverTheSeriesLimit(t *testing.T) {
	ing := testIngester(t, t.TempDir(), func(_ *Config, l *limits.Limits) { l.MaxSeries = 1 })
	now := time.Now().UnixMilli()
	if _, err := ing.Push(t.Context(), "t", request("first", now, 1, false, remotewrite.Metadata{})); err != nil {
		t.Fatal(err)
	}
	req := request("second", now, 1, true, remotewrite.Metadata{})
	req.Series[0].Samples = nil
	res, err := ing.Push(t.Context(), "t", req)
	if err != nil || res.Exemplars != 0 || res.RejectedSeries != 1 {
		t.Fatalf("exemplar of a series over the limit: %v, %d stored, %s", err, res.Exemplars, res.Message(1))
	}
}
