package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// dataStart is where the test data begins: a day boundary, so that ranges
// cross several.
var dataStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// dataSpan is how long the test data runs: more than the longest range.
const dataSpan = 8*24*time.Hour + 3*time.Hour

// loadTestData writes node_exporter-like series, a counter with a reset, a
// series that stops, one that starts late and native histograms, one
// sample a minute.
func loadTestData(t testing.TB, db storage.AppendableV2) {
	t.Helper()
	type gen struct {
		ls    labels.Labels
		value func(k int) float64
		hist  bool
		from  int
		to    int
	}
	var gens []gen
	for i, inst := range []string{"h1", "h2", "h3"} {
		for j, mode := range []string{"idle", "user", "system"} {
			rate := float64(1+i) * float64(1+j) / 10
			gens = append(gens, gen{ls: labels.FromStrings("__name__", "node_cpu_seconds_total", "instance", inst, "job", "node", "mode", mode, "cpu", "0"),
				value: func(k int) float64 { return float64(k) * 60 * rate * (1 + 0.3*math.Sin(float64(k)/97)) }})
		}
		gens = append(gens, gen{ls: labels.FromStrings("__name__", "node_memory_MemAvailable_bytes", "instance", inst, "job", "node"),
			value: func(k int) float64 { return 4e9 + 1e9*math.Sin(float64(k+i*100)/300) }})
		gens = append(gens, gen{ls: labels.FromStrings("__name__", "request_duration_seconds", "instance", inst, "job", "api"), hist: true})
	}
	for _, st := range []string{"200", "500"} {
		for _, path := range []string{"/a", "/b"} {
			gens = append(gens, gen{ls: labels.FromStrings("__name__", "http_requests_total", "job", "api", "path", path, "status", st),
				value: func(k int) float64 { return float64((k%5000)*(len(path)+len(st))) + float64(k%7) }})
		}
	}
	total := int(dataSpan / time.Minute)
	gens = append(gens,
		gen{ls: labels.FromStrings("__name__", "batch_last_success", "job", "batch"), value: func(k int) float64 { return float64(k / 60) }, to: total / 2},
		gen{ls: labels.FromStrings("__name__", "late_gauge", "job", "batch"), value: func(k int) float64 { return float64(k % 13) }, from: total / 3})
	ctx := context.Background()
	for day := 0; day*1440 < total; day++ {
		app := db.AppenderV2(ctx)
		for k := day * 1440; k < min(total, (day+1)*1440); k++ {
			ts := dataStart.Add(time.Duration(k) * time.Minute).UnixMilli()
			for _, g := range gens {
				if k < g.from || (g.to > 0 && k >= g.to) {
					continue
				}
				var err error
				if g.hist {
					_, err = app.Append(0, g.ls, 0, ts, 0, testHistogram(k), nil, storage.AOptions{})
				} else {
					_, err = app.Append(0, g.ls, 0, ts, g.value(k), nil, nil, storage.AOptions{})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// testHistogram is a growing native histogram (a counter).
func testHistogram(k int) *histogram.Histogram {
	n := uint64(k)
	return &histogram.Histogram{
		Count: 6 * n, ZeroCount: n, ZeroThreshold: 0.001, Sum: 3.5 * float64(k), Schema: 1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 4}},
		PositiveBuckets: []int64{int64(n), 0, 0, 0}, // deltas: n in each
		NegativeSpans:   []histogram.Span{{Offset: 1, Length: 1}},
		NegativeBuckets: []int64{int64(n)},
	}
}

// engineHandler answers range queries as Prometheus's API does (same
// engine options as the querier, same JSON codec), over db.
func engineHandler(t testing.TB, db storage.Queryable) http.Handler {
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true, NoStepSubqueryIntervalFn: func(int64) int64 { return 60_000 }})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		q, ok := parseRangeQuery(r.Form)
		if !ok {
			writeError(w, http.StatusBadRequest, "bad_data", "bad parameters")
			return
		}
		qry, err := eng.NewRangeQuery(r.Context(), db, nil, q.query, time.UnixMilli(q.start), time.UnixMilli(q.end), time.Duration(q.step)*time.Millisecond)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		defer qry.Close()
		res := qry.Exec(r.Context())
		if res.Err != nil {
			writeError(w, http.StatusUnprocessableEntity, "execution", res.Err.Error())
			return
		}
		warn, info := res.Warnings.AsStrings(q.query, 10, 10)
		qs := v1.DefaultStatsRenderer(r.Context(), qry.Stats(), r.FormValue("stats"))
		b, err := v1.JSONCodec{}.Encode(&v1.Response{Status: "success", Data: &v1.QueryData{ResultType: res.Value.Type(), Result: res.Value, Stats: qs}, Warnings: warn, Infos: info})
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

// comparedQueries are dashboard queries (#2) and the ones a split could
// get wrong: offsets, @, subqueries across day boundaries, counts, native
// histogram quantiles, topk, staleness, annotations and errors.
var comparedQueries = []string{
	`node_memory_MemAvailable_bytes`,
	`sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))`,
	`100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))`,
	`sum by (status) (rate(http_requests_total[5m]))`,
	`sum(increase(http_requests_total[1h]))`,
	`rate(http_requests_total[5m] offset 1h)`,
	`sum(rate(http_requests_total[5m] offset 1d))`,
	`node_memory_MemAvailable_bytes offset -30m`,
	`node_memory_MemAvailable_bytes @ end()`,
	`sum(rate(http_requests_total[5m] @ start()))`,
	`node_memory_MemAvailable_bytes @ 1762300000`,
	`max_over_time(rate(http_requests_total[5m])[1h:5m])`,
	`avg_over_time(sum(rate(node_cpu_seconds_total[5m]))[6h:])`,
	`min_over_time(node_memory_MemAvailable_bytes[2h:7m] offset 1h)`,
	`count_over_time(node_memory_MemAvailable_bytes[1h])`,
	`count_over_time(batch_last_success[30m])`,
	`histogram_quantile(0.9, sum(rate(request_duration_seconds[5m])))`,
	`histogram_quantile(0.99, sum by (instance) (rate(request_duration_seconds[10m])))`,
	`histogram_count(rate(request_duration_seconds[5m]))`,
	`histogram_fraction(0, 2, sum(rate(request_duration_seconds[5m])))`,
	`topk(2, rate(node_cpu_seconds_total[5m]))`,
	`bottomk(1, node_memory_MemAvailable_bytes)`,
	`time() - timestamp(node_memory_MemAvailable_bytes)`,
	`absent(nonexistent_metric)`,
	`predict_linear(node_memory_MemAvailable_bytes[1h], 3600)`,
	`resets(http_requests_total[1h])`,
	`changes(late_gauge[10m])`,
	`label_replace(late_gauge, "x", "$1", "job", "(.*)")`,
	`rate(node_memory_MemAvailable_bytes[5m])`,
	`quantile_over_time(0.5, node_memory_MemAvailable_bytes[30m])`,
	`vector(1)`,
	`scalar(sum(node_memory_MemAvailable_bytes))`,
	`1 + 1`,
	`sum by (job) (rate(nonexistent_metric[5m]))`,
	`node_memory_MemAvailable_bytes + on() group_left node_cpu_seconds_total`,
	`sum(`,
}

// comparedRanges are the ranges of the comparison with Grafana-like steps.
var comparedRanges = []struct {
	span time.Duration
	step string
}{
	{time.Hour, "15"}, {6 * time.Hour, "60"}, {24 * time.Hour, "60"}, {3 * 24 * time.Hour, "300"}, {8 * 24 * time.Hour, "10m"},
}

// federated is the context of a request for tenants a and b.
func tenantCtx(ctx context.Context) context.Context { return tenantauth.With(ctx, "test", "a") }

func get(t testing.TB, h http.Handler, params url.Values) (int, any) {
	t.Helper()
	r := httptest.NewRequestWithContext(tenantCtx(t.Context()), http.MethodGet, "/api/v1/query_range?"+params.Encode(), nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %.300s", err, body)
	}
	for _, k := range []string{"warnings", "infos"} {
		if l, ok := v[k].([]any); ok {
			slices.SortFunc(l, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		}
	}
	return w.Code, v
}

// TestSplitEqualsUnsplit is #15's comparison: every compared query over
// every compared range gives through the frontend exactly what the engine
// gives for the whole range, with and without alignment, from day
// boundaries and from odd start times.
func TestSplitEqualsUnsplit(t *testing.T) {
	db := teststorage.New(t)
	loadTestData(t, db)
	engine := engineHandler(t, db)
	cfg := testConfig()
	cfg.AlignQueriesWithStep = false
	unaligned := newTestFrontend(t, cfg, engine)
	cfg.AlignQueriesWithStep = true
	aligned := newTestFrontend(t, cfg, engine)
	end := dataStart.Add(dataSpan - 10*time.Minute)
	cached, _ := newCachedFrontend(t, cfg, engine, func() time.Time { return end.Add(-3 * time.Hour) })
	splits := 0
	for _, rg := range comparedRanges {
		for _, odd := range []time.Duration{0, 17*time.Minute + 13*time.Second + 250*time.Millisecond} {
			for _, q := range comparedQueries {
				start := end.Add(-rg.span - odd)
				params := url.Values{"query": {q}, "start": {formatTime(start.UnixMilli())}, "end": {formatTime(end.Add(-odd).UnixMilli())}, "step": {rg.step}}
				wantCode, want := get(t, engine, params)
				gotCode, got := get(t, unaligned, params)
				if wantCode != gotCode || !reflect.DeepEqual(want, got) {
					t.Errorf("%s over %s from %s (unaligned): engine %d %.600v\nfrontend %d %.600v", q, rg.span, start, wantCode, want, gotCode, got)
				}
				rq, _ := parseRangeQuery(params)
				rq.align()
				alignedParams := rq.pieceForm(piece{rq.start, rq.end})
				wantCode, want = get(t, engine, alignedParams)
				for k, fe := range []*Frontend{aligned, cached, cached} {
					gotCode, got = get(t, fe, params)
					if wantCode != gotCode || !reflect.DeepEqual(want, got) {
						t.Errorf("%s over %s from %s (aligned, frontend %d): engine %d %.600v\nfrontend %d %.600v", q, rg.span, start, k, wantCode, want, gotCode, got)
					}
				}
				if splittable(aligned.parser, rq) && len(split(rq.start, rq.end, rq.step, cfg.SplitQueriesByInterval.Milliseconds())) > 1 {
					splits++
				}
			}
		}
	}
	if splits < len(comparedQueries) {
		t.Fatalf("only %d compared queries were split", splits)
	}
}

func testConfig() Config {
	return Config{AlignQueriesWithStep: true, SplitQueriesByInterval: 24 * time.Hour, MaxQueryParallelism: 4, MaxCacheFreshness: 10 * time.Minute,
		ResultsCache: CacheConfig{Backend: BackendNone}}
}

// newCachedFrontend is a frontend with an in-process results cache and the
// clock now; it returns the frontend's registry too.
func newCachedFrontend(t testing.TB, cfg Config, next http.Handler, now func() time.Time) (*Frontend, *prometheus.Registry) {
	t.Helper()
	cfg.ResultsCache = CacheConfig{Backend: BackendFastcache, FastcacheSizeMB: 256} // fastcache evicts within a bucket (size/512): leave room
	c, err := NewCache(cfg.ResultsCache)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	f, err := New(cfg, next, Options{Cache: c, Reg: reg, Now: now,
		Key:        func(_ context.Context, tenant string) ([]byte, error) { return []byte("secret of " + tenant), nil },
		Generation: func(context.Context, string) (string, error) { return "0", nil }})
	if err != nil {
		t.Fatal(err)
	}
	return f, reg
}

func newTestFrontend(t testing.TB, cfg Config, next http.Handler) *Frontend {
	t.Helper()
	f, err := New(cfg, next, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
