package frontend

import (
	"encoding/json"
	"log/slog"
	"time"
)

// queryStats is the stats object of Prometheus's API (stats=true or all,
// what Grafana's query inspector shows), summed over the pieces of a split
// query, with what the frontend adds: how it split and cached the query
// and how long its pieces waited for the scheduler.
type queryStats struct {
	Timings  queryTimings   `json:"timings"`
	Samples  querySamples   `json:"samples"`
	Frontend *frontendStats `json:"frontend,omitempty"`
}

type queryTimings struct {
	EvalTotalTime        float64 `json:"evalTotalTime"`
	ResultSortTime       float64 `json:"resultSortTime"`
	QueryPreparationTime float64 `json:"queryPreparationTime"`
	InnerEvalTime        float64 `json:"innerEvalTime"`
	ExecQueueTime        float64 `json:"execQueueTime"`
	ExecTotalTime        float64 `json:"execTotalTime"`
}

type querySamples struct {
	TotalQueryableSamples int64 `json:"totalQueryableSamples"`
	SamplesRead           int64 `json:"samplesRead"`
	SeriesTouched         int64 `json:"seriesTouched"`
	PeakSamples           int64 `json:"peakSamples"`
}

// frontendStats is what the frontend did with one query.
type frontendStats struct {
	SplitQueries  int     `json:"splitQueries"`
	CachedQueries int     `json:"cachedQueries"` // pieces answered at least in part from the cache
	CacheHitRatio float64 `json:"cacheHitRatio"`
	QueueTime     float64 `json:"queueTime"` // seconds the pieces waited for the scheduler, summed
}

// add adds a piece's stats (as the querier wrote them) to s.
func (s *queryStats) add(raw json.RawMessage) {
	if len(raw) == 0 {
		return
	}
	var p queryStats
	if json.Unmarshal(raw, &p) != nil {
		return
	}
	t := &s.Timings
	t.EvalTotalTime += p.Timings.EvalTotalTime
	t.ResultSortTime += p.Timings.ResultSortTime
	t.QueryPreparationTime += p.Timings.QueryPreparationTime
	t.InnerEvalTime += p.Timings.InnerEvalTime
	t.ExecQueueTime += p.Timings.ExecQueueTime
	t.ExecTotalTime += p.Timings.ExecTotalTime
	s.Samples.TotalQueryableSamples += p.Samples.TotalQueryableSamples
	s.Samples.SamplesRead += p.Samples.SamplesRead
	s.Samples.SeriesTouched += p.Samples.SeriesTouched
	s.Samples.PeakSamples = max(s.Samples.PeakSamples, p.Samples.PeakSamples)
}

// mergeStats sums the pieces' stats.
func mergeStats(results []pieceResult) queryStats {
	st := queryStats{Frontend: &frontendStats{SplitQueries: len(results)}}
	for _, r := range results {
		st.add(r.data.Stats)
		st.Frontend.QueueTime += r.queueTime.Seconds()
		if r.cached {
			st.Frontend.CachedQueries++
		}
	}
	if len(results) > 0 {
		st.Frontend.CacheHitRatio = float64(st.Frontend.CachedQueries) / float64(len(results))
	}
	st.Timings.ExecQueueTime += st.Frontend.QueueTime
	return st
}

// maxLoggedQuery is how much of a query's text the slow-query log keeps.
const maxLoggedQuery = 2000

// logSlow writes the per-query line of -query-frontend.log-queries-longer-than.
func (f *Frontend) logSlow(tenant string, q rangeQuery, took time.Duration, st queryStats, status int) {
	if f.cfg.LogQueriesLongerThan <= 0 || took <= f.cfg.LogQueriesLongerThan {
		return
	}
	text := q.query
	if len(text) > maxLoggedQuery {
		text = text[:maxLoggedQuery] + "…"
	}
	f.logger.Info("slow query", "tenant", tenant, "query", text,
		"start", time.UnixMilli(q.start).UTC().Format(time.RFC3339), "end", time.UnixMilli(q.end).UTC().Format(time.RFC3339),
		"step", time.Duration(q.step)*time.Millisecond, "status", status, "duration", took,
		slog.Int("split_queries", st.Frontend.SplitQueries), slog.Float64("cache_hit_ratio", st.Frontend.CacheHitRatio),
		slog.Duration("queue_time", time.Duration(st.Frontend.QueueTime*float64(time.Second))),
		slog.Int64("samples_read", st.Samples.SamplesRead), slog.Int64("total_queryable_samples", st.Samples.TotalQueryableSamples))
}
