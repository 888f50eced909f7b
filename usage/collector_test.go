package usage

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	r, err := NewRecorderWithOptions(t.TempDir(), func() map[string]Gauges {
		return map[string]Gauges{"a": {ActiveSeries: 12, StoredBytes: 3400}}
	}, Options{Now: (&clock{t: h10}).Now}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	r.Add("a", SamplesReceived, 100)
	r.Add("a", BytesReceived, 2048)
	r.Add("b", Queries, 3)
	r.sampleGauges()
	const want = `
# HELP fluxpulse_usage_active_series Active series per tenant, as last sampled for usage accounting.
# TYPE fluxpulse_usage_active_series gauge
fluxpulse_usage_active_series{tenant="a"} 12
# HELP fluxpulse_usage_bytes_received_total Push request bytes received (compressed), per tenant.
# TYPE fluxpulse_usage_bytes_received_total counter
fluxpulse_usage_bytes_received_total{tenant="a"} 2048
fluxpulse_usage_bytes_received_total{tenant="b"} 0
# HELP fluxpulse_usage_queries_total Query API requests, per tenant.
# TYPE fluxpulse_usage_queries_total counter
fluxpulse_usage_queries_total{tenant="a"} 0
fluxpulse_usage_queries_total{tenant="b"} 3
# HELP fluxpulse_usage_samples_received_total Float samples accepted from pushes, per tenant.
# TYPE fluxpulse_usage_samples_received_total counter
fluxpulse_usage_samples_received_total{tenant="a"} 100
fluxpulse_usage_samples_received_total{tenant="b"} 0
# HELP fluxpulse_usage_stored_bytes Bytes stored per tenant, as last sampled for usage accounting.
# TYPE fluxpulse_usage_stored_bytes gauge
fluxpulse_usage_stored_bytes{tenant="a"} 3400
`
	names := []string{"fluxpulse_usage_active_series", "fluxpulse_usage_bytes_received_total", "fluxpulse_usage_queries_total",
		"fluxpulse_usage_samples_received_total", "fluxpulse_usage_stored_bytes"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Every kind is exposed for every tenant seen, plus the gauges of a
	// and the write failure counter.
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 2*int(numKinds)+3 {
		t.Fatalf("%d series, %v; want %d", n, err, 2*int(numKinds)+3)
	}
}
