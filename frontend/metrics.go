package frontend

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	queries *prometheus.CounterVec
	pieces  prometheus.Counter
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
	}
}
