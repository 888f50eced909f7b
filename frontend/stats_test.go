package frontend

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/util/teststorage"
)

// TestStats: with stats=all a split query answers Prometheus's stats
// object summed over its pieces (the samples the unsplit query reads) with
// the split count, cache hit ratio and queue time; a query slower than
// -query-frontend.log-queries-longer-than is logged with them.
func TestStats(t *testing.T) {
	db := teststorage.New(t)
	loadTestData(t, db)
	engine := engineHandler(t, db)
	var logs bytes.Buffer
	cfg := testConfig()
	cfg.LogQueriesLongerThan = time.Nanosecond
	end := dataStart.Add(4 * 24 * time.Hour)
	f, _ := newCachedFrontend(t, cfg, engine, func() time.Time { return end.Add(time.Hour) })
	f.logger = slog.New(slog.NewTextHandler(&logs, nil))
	params := url.Values{"query": {`sum(rate(http_requests_total[5m]))`}, "step": {"60"}, "stats": {"all"},
		"start": {formatTime(end.Add(-3 * 24 * time.Hour).UnixMilli())}, "end": {formatTime(end.UnixMilli())}}
	ask := func(h http.Handler) queryStats {
		t.Helper()
		r := httptest.NewRequestWithContext(tenantCtx(t.Context()), http.MethodGet, "/api/v1/query_range?"+params.Encode(), nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var resp struct {
			Data struct {
				Stats queryStats `json:"stats"`
			} `json:"data"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != http.StatusOK {
			t.Fatalf("%d %v: %.300s", w.Code, err, w.Body.String())
		}
		return resp.Data.Stats
	}
	unsplit := ask(engine)
	first := ask(f)
	if first.Frontend == nil || first.Frontend.SplitQueries != 4 || first.Frontend.CacheHitRatio != 0 {
		t.Fatalf("first answer's frontend stats: %+v", first.Frontend)
	}
	if first.Samples.TotalQueryableSamples != unsplit.Samples.TotalQueryableSamples || first.Samples.SamplesRead == 0 {
		t.Errorf("split samples %+v, unsplit %+v", first.Samples, unsplit.Samples)
	}
	second := ask(f)
	if second.Frontend.CacheHitRatio != 1 || second.Samples.TotalQueryableSamples != 0 {
		t.Errorf("second answer (all cached): %+v %+v", second.Frontend, second.Samples)
	}
	for _, want := range []string{"msg=\"slow query\"", "tenant=a", "split_queries=4", "cache_hit_ratio=1", "queue_time=", "samples_read="} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
