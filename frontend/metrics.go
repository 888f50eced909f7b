package frontend

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	queries *prometheus.CounterVec
	pieces  prometheus.Counter

	cacheHits, cacheMisses            prometheus.Counter
	cacheReadBytes, cacheWrittenBytes prometheus.Counter
	downstreamSeconds                 prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		queries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_query_frontend_range_queries_total",
			Help: "Range queries the query frontend received, by what it did: split, unsplit (the split could change the answer) or passed_through (parameters the querier refuses).",
		}, []string{"outcome"}),
		pieces: f.NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_query_frontend_split_pieces_total",
			Help: "Pieces the query frontend split range queries into.",
		}),
		cacheHits: f.NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_query_frontend_results_cache_hits_total",
			Help: "Pieces of range queries answered at least in part from the results cache.",
		}),
		cacheMisses: f.NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_query_frontend_results_cache_misses_total",
			Help: "Pieces of range queries the results cache held nothing of.",
		}),
		cacheReadBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_query_frontend_results_cache_read_bytes_total",
			Help: "Bytes (encrypted) read from the results cache.",
		}),
		cacheWrittenBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_query_frontend_results_cache_written_bytes_total",
			Help: "Bytes (encrypted) written to the results cache.",
		}),
		downstreamSeconds: f.NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_query_frontend_downstream_range_seconds_total",
			Help: "Seconds of query range the query frontend asked the queriers to evaluate (what the cache did not hold).",
		}),
	}
}
