package queryqueue

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	length    *prometheus.GaugeVec
	discarded *prometheus.CounterVec
	cancelled prometheus.Counter
	duration  prometheus.Histogram
}

// newMetrics registers the queue's metrics on reg (none if reg is nil).
// The queue length is per tenant, like the other per-tenant series of
// FluxPulse, and goes away when the tenant has nothing queued or running.
func newMetrics(reg prometheus.Registerer, workers int, busy func() float64) *metrics {
	m := &metrics{
		length: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fluxpulse_query_frontend_queue_length",
			Help: "Sub-queries waiting in the query frontend's queue, per tenant."}, []string{"tenant"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_query_frontend_discarded_requests_total",
			Help: "Sub-queries refused with 429 because the tenant had -" + FlagMaxOutstanding + " waiting."}, []string{"tenant"}),
		cancelled: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_query_frontend_queue_cancelled_requests_total",
			Help: "Sub-queries whose request ended (client gone, timeout) while they waited in the queue."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fluxpulse_query_frontend_queue_duration_seconds",
			Help:    "Time sub-queries waited in the query frontend's queue for a querier worker.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.length, m.discarded, m.cancelled, m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fluxpulse_query_frontend_querier_workers",
			Help: "Querier worker slots of the query frontend (-" + FlagQuerierWorkers + ")."},
			func() float64 { return float64(workers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fluxpulse_query_frontend_querier_workers_busy",
			Help: "Querier worker slots running a sub-query."}, busy))
	return m
}
