package distributor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/limits"
)

func series(n int, name string) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, n)
	for i := range out {
		out[i] = ts(name, "i", fmt.Sprint(i))
	}
	return out
}

func TestIngestionRateLimit(t *testing.T) {
	e := newEnv(t, func(l *limits.Limits, _ *distributor.Config) {
		l.IngestionRate = 1 // so slow that nothing refills during the test
		l.IngestionBurstSize = 100
	})
	body := encodeV1(t, &prompb.WriteRequest{Timeseries: series(60, "rate_metric")})
	if r := e.post(t, "noisy", ctV1, "snappy", body); r.status != 204 {
		t.Fatalf("first 60 samples within the burst: %d %s", r.status, r.body)
	}
	r := e.post(t, "noisy", ctV1, "snappy", body)
	if r.status != 429 || !strings.Contains(r.body, "ingestion rate limit of 1 samples/s with a burst of 100") ||
		!strings.Contains(r.body, "-distributor.ingestion-rate-limit") || !strings.Contains(r.body, "ingestion_rate") {
		t.Fatalf("over the rate: %d %q", r.status, r.body)
	}
	if n := e.count(t, "noisy", "rate_metric"); n != 60 {
		t.Fatalf("%d samples stored, want only the 60 of the first request", n)
	}
	// Another tenant has its own bucket.
	if r := e.post(t, "quiet", ctV1, "snappy", body); r.status != 204 {
		t.Fatalf("another tenant: %d %s", r.status, r.body)
	}
	// A request larger than the burst can never pass: 400, not 429.
	big := encodeV1(t, &prompb.WriteRequest{Timeseries: series(101, "big")})
	if r := e.post(t, "third", ctV1, "snappy", big); r.status != 400 || !strings.Contains(r.body, "more than the ingestion burst size of 100") {
		t.Fatalf("request over the burst: %d %q", r.status, r.body)
	}
}

func TestSampleAgeLimits(t *testing.T) {
	e := newEnv(t, func(l *limits.Limits, _ *distributor.Config) { l.MaxSampleAge = time.Hour })
	old := ts("aged")
	old.Samples[0].Timestamp = time.Now().Add(-2 * time.Hour).UnixMilli()
	r := e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{old, ts("fresh")}}))
	if r.status != 400 || !strings.Contains(r.body, "too old: the limit is 1h0m0s") || !strings.Contains(r.body, "-validation.max-sample-age") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if e.count(t, "t", "aged") != 0 || e.count(t, "t", "fresh") != 1 {
		t.Fatal("the old sample was stored or the fresh one was not")
	}
}

func TestSeriesLimits(t *testing.T) {
	e := newEnv(t, func(l *limits.Limits, _ *distributor.Config) {
		l.MaxSeries = 10
		l.MaxSeriesPerMetric = 4
	})
	r := e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: series(6, "per_metric")}))
	if r.status != 400 || !strings.Contains(r.body, `metric "per_metric" has 4 active series, the limit is 4`) || !strings.Contains(r.body, "max_series_per_metric") {
		t.Fatalf("per metric: %d %q", r.status, r.body)
	}
	if n := e.count(t, "t", "per_metric"); n != 4 {
		t.Fatalf("%d per_metric samples stored, want 4", n)
	}
	// Known series still take samples at the limit.
	r = e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: append(series(3, "m2"), series(3, "m3")...)}))
	if r.status != 204 {
		t.Fatalf("up to 10 series: %d %s", r.status, r.body)
	}
	r = e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: series(1, "m4")}))
	if r.status != 400 || !strings.Contains(r.body, "the tenant has 10 active series, the limit is 10") || !strings.Contains(r.body, "-ingester.max-series-per-tenant") {
		t.Fatalf("per tenant: %d %q", r.status, r.body)
	}
	s := series(1, "per_metric")[0]
	s.Samples[0].Timestamp++
	if r := e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}})); r.status != 204 {
		t.Fatalf("a known series at the limit: %d %s", r.status, r.body)
	}
}
