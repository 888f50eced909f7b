package querier

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// queryEnv is a querier over a real ingester behind header authentication.
type queryEnv struct {
	srv  *httptest.Server
	q    *Querier
	ing  *ingester.Ingester
	reg  *prometheus.Registry
	ov   *limits.Overrides
	base limits.Limits
	now  time.Time
}

// newQueryEnv starts the env; extra sources are queried besides the
// ingester.
func newQueryEnv(t testing.TB, extra ...Source) *queryEnv {
	t.Helper()
	var lim limits.Limits
	var icfg ingester.Config
	var qcfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	lim.RegisterFlags(fs)
	icfg.RegisterFlags(fs)
	qcfg.RegisterFlags(fs)
	icfg.Dir = t.TempDir()
	ov := limits.NewOverrides(lim)
	ing, err := ingester.New(icfg, ov, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ing.Close() })
	reg := prometheus.NewRegistry()
	q, err := New(qcfg, NewQueryable(ov, qcfg.LookbackDelta, ing, append([]Source{ing}, extra...)...), ing, BuildInfo{}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := tenantauth.New(tenantauth.Config{Mode: "header"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	q.Register(mux, func(h http.Handler) http.Handler { return auth.Middleware(tenantauth.ScopeRead, WriteError, h) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// 5 series of 120 samples, one a second, ending now.
	now := time.Now().Truncate(time.Second)
	req := &remotewrite.Request{}
	for s := range 5 {
		series := remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: "m"}, {Name: "s", Value: fmt.Sprint(s)}}}
		for i := range 120 {
			series.Samples = append(series.Samples, remotewrite.Sample{Timestamp: now.Add(time.Duration(i-119) * time.Second).UnixMilli(), Value: float64(i)})
		}
		req.Series = append(req.Series, series)
	}
	if res, err := ing.Push(t.Context(), "t", req); err != nil || res.Rejected() {
		t.Fatalf("push: %v %s", err, res.Message(5))
	}
	return &queryEnv{srv: srv, q: q, ing: ing, reg: reg, ov: ov, base: lim, now: now}
}

func (e *queryEnv) get(t *testing.T, path string, params url.Values) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path+"?"+params.Encode(), nil)
	return e.do(t, req)
}

// do sends a request as tenant t and returns the status, the error type
// and the body.
func (e *queryEnv) do(t *testing.T, req *http.Request) (int, string, string) {
	t.Helper()
	req.Header.Set("X-Scope-OrgID", "t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct{ ErrorType string }
	_ = json.Unmarshal(b, &r)
	return resp.StatusCode, r.ErrorType, string(b)
}

// set replaces the limits with the flag defaults changed by mod.
func (e *queryEnv) set(mod func(*limits.Limits)) {
	l := e.base
	mod(&l)
	e.ov.Set(l, nil)
}

func TestQueryLimits(t *testing.T) {
	e := newQueryEnv(t)
	ts := func(d time.Duration) string { return fmt.Sprint(e.now.Add(d).Unix()) }
	rangeQ := url.Values{"query": {"sum(m)"}, "start": {ts(-2 * time.Minute)}, "end": {ts(0)}, "step": {"1"}}
	for _, tc := range []struct {
		name   string
		mod    func(*limits.Limits)
		path   string
		params url.Values
		status int
		typ    string
		msg    string
	}{
		{"unlimited", func(*limits.Limits) {}, "/api/v1/query_range", rangeQ, 200, "", `"status":"success"`},
		{"series", func(l *limits.Limits) { l.MaxFetchedSeriesPerQuery = 3 }, "/api/v1/query", url.Values{"query": {"count(m)"}},
			422, "cost_limit", "more than 3 series of tenant t (-querier.max-fetched-series-per-query, or max_fetched_series_per_query in the runtime file)"},
		{"samples", func(l *limits.Limits) { l.MaxFetchedSamplesPerQuery = 300 }, "/api/v1/query_range", rangeQ,
			422, "cost_limit", "more than 300 samples of tenant t (-querier.max-fetched-samples-per-query"},
		{"length", func(l *limits.Limits) { l.MaxQueryLength = time.Minute }, "/api/v1/query_range",
			url.Values{"query": {"sum(m)"}, "start": {ts(-time.Hour)}, "end": {ts(0)}, "step": {"60"}},
			422, "cost_limit", "the limit is 1m0s (-querier.max-query-length"},
		{"length of a range selector", func(l *limits.Limits) { l.MaxQueryLength = time.Minute }, "/api/v1/query",
			url.Values{"query": {"rate(m[1h])"}}, 422, "cost_limit", "-querier.max-query-length"},
		{"open label range is clamped, not refused", func(l *limits.Limits) { l.MaxQueryLength = time.Minute }, "/api/v1/labels", nil, 200, "", `"__name__"`},
		{"timeout", func(l *limits.Limits) { l.QueryTimeout = time.Nanosecond }, "/api/v1/query", url.Values{"query": {"count(m)"}}, 503, "timeout", "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.set(tc.mod)
			status, typ, body := e.get(t, tc.path, tc.params)
			if status != tc.status || typ != tc.typ || !strings.Contains(body, tc.msg) {
				t.Fatalf("%d %s %s, want %d %s mentioning %q", status, typ, body, tc.status, tc.typ, tc.msg)
			}
		})
	}
}

func TestConcurrentQueryLimit(t *testing.T) {
	e := newQueryEnv(t)
	e.set(func(l *limits.Limits) { l.MaxConcurrentQueries = 1 })
	release := make(chan struct{})
	started := make(chan struct{})
	h := e.q.limit(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
	}))
	call := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
		r = r.WithContext(tenantauth.With(r.Context(), "test", "t"))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- call() }()
	<-started
	w := call()
	if w.Code != 429 || !strings.Contains(w.Body.String(), "runs 1 queries already, the limit is 1 (-querier.max-concurrent-queries") {
		t.Fatalf("second concurrent query: %d %s", w.Code, w.Body)
	}
	close(release)
	if first := <-done; first.Code != 200 {
		t.Fatalf("first query: %d", first.Code)
	}
	started = make(chan struct{})
	release = make(chan struct{})
	close(release)
	if w := call(); w.Code != 200 {
		t.Fatalf("after the first finished: %d %s", w.Code, w.Body)
	}
}
