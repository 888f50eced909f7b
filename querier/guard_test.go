package querier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// nested is the attack of #12 item 1: '('*n + '1' + ')'*n.
func nested(n int) string { return strings.Repeat("(", n) + "1" + strings.Repeat(")", n) }

// TestGuardEveryEndpoint is the regression test of #12 item 1 in the
// querier: deeply nested PromQL sent to any endpoint that parses PromQL or
// matchers, in the URL or in a form-encoded body, is refused with 400
// bad_data naming the limit before it is parsed (format_query used to spend
// seconds, then minutes, on it), while the same endpoints still answer
// ordinary requests.
func TestGuardEveryEndpoint(t *testing.T) {
	e := newQueryEnv(t)
	sel := func(depth int) string { return "m{s=\"1\"} + " + nested(depth) }
	endpoints := []struct {
		path, param, ok string
	}{
		{"/api/v1/query", "query", "sum(m)"},
		{"/api/v1/query_range", "query", "sum(m)"},
		{"/api/v1/query_exemplars", "query", "m"},
		{"/api/v1/format_query", "query", "sum(m)"},
		{"/api/v1/parse_query", "query", "sum(m)"},
		{"/prometheus/api/v1/query", "query", "sum(m)"},
		{"/api/v1/series", "match[]", "m"},
		{"/api/v1/labels", "match[]", "m"},
		{"/api/v1/label/s/values", "match[]", "m"},
		{"/api/v1/export", "match[]", "m"},
	}
	for _, ep := range endpoints {
		for _, tc := range []struct {
			name, text, status, msg string
		}{
			{"ordinary", ep.ok, "200", ""},
			{"nested 2000 deep", nested(2000), "400", "nests more than 64 levels deep, the limit of tenant t (-querier.max-query-expression-depth, or max_query_expression_depth in the runtime file"},
			{"nested 50000 deep", nested(50_000), "400", "is 100001 bytes, more than the limit of 65536 bytes of tenant t (-querier.max-query-expression-size-bytes"},
			{"an operator chain", strings.Repeat("m+", 100) + "m", "400", "-querier.max-query-expression-depth"},
			{"behind a selector", sel(100), "400", "-querier.max-query-expression-depth"},
		} {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				if method == http.MethodPost && strings.HasPrefix(ep.path, "/api/v1/label/") {
					continue // GET only, in Prometheus too
				}
				t.Run(strings.ReplaceAll(strings.TrimPrefix(ep.path, "/"), "/", ".")+"/"+tc.name+"/"+method, func(t *testing.T) {
					params := url.Values{ep.param: {tc.text}, "start": {"0"}, "end": {"1"}, "step": {"1"}}
					var req *http.Request
					if method == http.MethodGet {
						req, _ = http.NewRequest(method, e.srv.URL+ep.path+"?"+params.Encode(), nil)
					} else {
						req, _ = http.NewRequest(method, e.srv.URL+ep.path, strings.NewReader(params.Encode()))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					}
					status, typ, body := e.do(t, req)
					if tc.status == "200" {
						if status != 200 {
							t.Fatalf("%d %s", status, body)
						}
						return
					}
					if method == http.MethodPost && len(params.Encode()) > 3*64<<10+64<<10 {
						// A form-encoded body is bounded first, by the same limit.
						if status != 413 || !strings.Contains(body, "-querier.max-query-expression-size-bytes") {
							t.Fatalf("%d %.300s, want 413 naming the limit", status, body)
						}
						return
					}
					if status != 400 || typ != "bad_data" || !strings.Contains(body, "the PromQL of "+ep.param) || !strings.Contains(body, tc.msg) {
						t.Fatalf("%d %s %.300s, want 400 bad_data mentioning %q", status, typ, body, tc.msg)
					}
				})
			}
		}
	}
}

// TestGuardLimitsPerTenant checks that the limits come from the tenant's
// own limits, and that 0 turns the guard off.
func TestGuardLimitsPerTenant(t *testing.T) {
	e := newQueryEnv(t)
	q := url.Values{"query": {nested(20)}}
	if status, _, body := e.get(t, "/api/v1/query", q); status != 200 {
		t.Fatalf("depth 21 at the default limit: %d %s", status, body)
	}
	e.set(func(l *limits.Limits) { l.MaxQueryExpressionDepth = 10 })
	if status, _, body := e.get(t, "/api/v1/query", q); status != 400 || !strings.Contains(body, "more than 10 levels") {
		t.Fatalf("depth 21 at a limit of 10: %d %s", status, body)
	}
	e.set(func(l *limits.Limits) { l.MaxQueryExpressionDepth, l.MaxQueryExpressionSizeBytes = 0, 0 })
	if status, _, body := e.get(t, "/api/v1/query", url.Values{"query": {nested(300)}}); status != 200 {
		t.Fatalf("unlimited: %d %s", status, body)
	}
}

// TestGuardBodies covers what reaches the handlers in a body: a multipart
// form (which handlers would parse after the guard) is refused, a
// form-encoded body is bounded by the size limit, and the matchers of a
// remote-read request are checked while a small one still reads.
func TestGuardBodies(t *testing.T) {
	e := newQueryEnv(t)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("query", nested(2000))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/format_query", &mp)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if status, _, body := e.do(t, req); status != 415 || !strings.Contains(body, "multipart") {
		t.Fatalf("multipart: %d %s", status, body)
	}

	big := url.Values{"query": {"1"}, "padding": {strings.Repeat("x", 300<<10)}}.Encode()
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/query", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, _, body := e.do(t, req); status != 413 || !strings.Contains(body, "-querier.max-query-expression-size-bytes") {
		t.Fatalf("large form body: %d %s", status, body)
	}

	read := func(matchers int, value string) (int, string) {
		q := &prompb.Query{StartTimestampMs: e.now.Add(-10 * time.Minute).UnixMilli(), EndTimestampMs: e.now.UnixMilli()}
		for range matchers {
			q.Matchers = append(q.Matchers, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: value})
		}
		b, err := (&prompb.ReadRequest{Queries: []*prompb.Query{q}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, b)))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		status, _, body := e.do(t, req)
		return status, body
	}
	if status, body := read(1, "m"); status != 200 {
		t.Fatalf("remote read: %d %s", status, body)
	}
	if status, body := read(2, strings.Repeat("m|", 20<<10)); status != 400 || !strings.Contains(body, "the matchers of the remote-read request are 81944 bytes, more than the limit of 65536 bytes of tenant t") {
		t.Fatalf("remote read with large matchers: %d %s", status, body)
	}
	bomb, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/read", bytes.NewReader([]byte{0x80, 0x80, 0x80, 0x80, 0x04}))
	bomb.Header.Set("Content-Type", "application/x-protobuf")
	if status, _, body := e.do(t, bomb); status != 400 || !strings.Contains(body, "decompresses to 1073741824 bytes") {
		t.Fatalf("remote read claiming 1 GiB: %d %s", status, body)
	}
}

// stallingSource is a store whose series never come: Select waits for its
// context to end, as a store stuck on a slow disk or network would (a fault
// a real store does not produce on demand).
type stallingSource struct{}

func (stallingSource) Querier(context.Context, string, int64, int64) (storage.Querier, error) {
	return stallingQuerier{storage.NoopQuerier()}, nil
}

func (stallingSource) ChunkQuerier(context.Context, string, int64, int64) (storage.ChunkQuerier, error) {
	return storage.NoopChunkedQuerier(), nil
}

type stallingQuerier struct{ storage.Querier }

func (stallingQuerier) Select(ctx context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	<-ctx.Done()
	return storage.ErrSeriesSet(ctx.Err())
}

// TestQueryStopsWhenClientLeaves checks what #12 item 1 asks of
// evaluation: the API hands the request's context to the engine and on to
// storage, so a query whose client has gone away stops at once, long
// before its timeout (2 minutes here), and leaves nothing running.
func TestQueryStopsWhenClientLeaves(t *testing.T) {
	e := newQueryEnv(t, stallingSource{})
	running := func() (float64, error) {
		mfs, err := e.reg.Gather()
		if err != nil {
			return 0, err
		}
		for _, mf := range mfs {
			if mf.GetName() == "prometheus_engine_queries" {
				return mf.GetMetric()[0].GetGauge().GetValue(), nil
			}
		}
		return 0, errors.New("no prometheus_engine_queries gauge")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	q := url.Values{"query": {"sum(rate(m[5m]))"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/api/v1/query?"+q.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", "t")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the query finished: %s", resp.Status)
		}
		done <- err
	}()
	waitFor := func(want float64) func() error {
		return func() error {
			n, err := running()
			if err == nil && n != want {
				err = fmt.Errorf("%v queries running, want %v", n, want)
			}
			return err
		}
	}
	testbin.Eventually(t, 30*time.Second, waitFor(1))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	testbin.Eventually(t, 30*time.Second, waitFor(0))
}

// TestSubquerySteps is a regression test of #12 item 1: a 40-byte query
// whose subquery has a billion steps made the engine allocate 500 GB before
// evaluating anything, and the process died ("fatal error: runtime: out of
// memory"). It is refused with 400, naming the limit, while ordinary
// subqueries run.
func TestSubquerySteps(t *testing.T) {
	e := newQueryEnv(t)
	ts := func(d time.Duration) string { return fmt.Sprint(e.now.Add(d).Unix()) }
	for _, tc := range []struct {
		name, path string
		params     url.Values
		status     int
		msg        string
	}{
		{"ordinary", "/api/v1/query", url.Values{"query": {"max_over_time(rate(m[1m])[10m:1m])"}}, 200, `"status":"success"`},
		{"a year at 1ms", "/api/v1/query", url.Values{"query": {"count_over_time(vector(1)[1y:1ms])"}}, 400,
			"evaluates 31536000001 steps (8760h0m0s of range and of the range around it, at a step of 1ms), more than the limit of 11000 of tenant t (-querier.max-subquery-steps"},
		{"ordinary range", "/api/v1/query_range", url.Values{"query": {"max_over_time(m[10m:1s])"}, "start": {ts(-time.Hour)}, "end": {ts(0)}, "step": {"60"}}, 200, `"status":"success"`},
		{"the range query's span counts", "/api/v1/query_range", url.Values{"query": {"max_over_time(m[10m:1s])"}, "start": {ts(-24 * time.Hour)}, "end": {ts(0)}, "step": {"60"}}, 400,
			"evaluates 87001 steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, typ, body := e.get(t, tc.path, tc.params)
			if status != tc.status || !strings.Contains(body, tc.msg) || status == 400 && typ != "bad_data" {
				t.Fatalf("%d %s %s, want %d mentioning %q", status, typ, body, tc.status, tc.msg)
			}
		})
	}
}
