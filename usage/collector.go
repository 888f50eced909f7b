package usage

import "github.com/prometheus/client_golang/prometheus"

// collector exposes the live counters and the latest gauge sample:
// fluxpulse_usage_<kind>_total{tenant} and fluxpulse_usage_<gauge>{tenant}.
// Counters count since the process started, as Prometheus counters do.
type collector struct {
	r                    *Recorder
	counters             [numKinds]*prometheus.Desc
	activeSeries, stored *prometheus.Desc
}

var kindHelp = [numKinds]string{
	"Float samples accepted from pushes, per tenant.",
	"Native histogram samples accepted from pushes, per tenant.",
	"Exemplars accepted from pushes, per tenant.",
	"Push request bytes received (compressed), per tenant.",
	"Samples and histograms refused in pushes, per tenant.",
	"Query API requests, per tenant.",
	"Samples touched by query evaluation, per tenant.",
	"Series fetched by queries and series requests, per tenant.",
}

func newCollector(r *Recorder) *collector {
	c := &collector{
		r:            r,
		activeSeries: prometheus.NewDesc("fluxpulse_usage_active_series", "Active series per tenant, as last sampled for usage accounting.", []string{"tenant"}, nil),
		stored:       prometheus.NewDesc("fluxpulse_usage_stored_bytes", "Bytes stored per tenant, as last sampled for usage accounting.", []string{"tenant"}, nil),
	}
	for k := range numKinds {
		c.counters[k] = prometheus.NewDesc("fluxpulse_usage_"+k.String()+"_total", kindHelp[k], []string{"tenant"}, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.counters {
		ch <- d
	}
	ch <- c.activeSeries
	ch <- c.stored
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for tenant, tot := range c.r.snapshot() {
		for k, v := range tot {
			send(ch, c.counters[k], prometheus.CounterValue, v, tenant)
		}
	}
	for tenant, g := range c.r.gaugeSample() {
		send(ch, c.activeSeries, prometheus.GaugeValue, g.ActiveSeries, tenant)
		send(ch, c.stored, prometheus.GaugeValue, g.StoredBytes, tenant)
	}
}

func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v int64, tenant string) {
	m, err := prometheus.NewConstMetric(d, t, float64(v), tenant)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
