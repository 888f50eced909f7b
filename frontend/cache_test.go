package frontend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/util/teststorage"
)

// TestCacheRefreshReadsNewPart: a dashboard refresh a minute later asks the
// queriers only for what is newer than the cached extents (the freshness
// window and the new minute), answers as the engine does, and a changed
// generation or Cache-Control: no-store asks for everything again.
func TestCacheRefreshReadsNewPart(t *testing.T) {
	db := teststorage.New(t)
	loadTestData(t, db)
	engine := engineHandler(t, db)
	var now atomic.Int64
	now.Store(dataStart.Add(7*24*time.Hour + 13*time.Hour + 7*time.Minute).UnixMilli())
	var gen atomic.Int64
	cfg := testConfig()
	f, _ := newCachedFrontend(t, cfg, engine, func() time.Time { return time.UnixMilli(now.Load()) })
	f.generation = func(context.Context, string) (string, error) { return time.Duration(gen.Load()).String(), nil }
	const step = 60_000
	refresh := func(header http.Header) float64 {
		t.Helper()
		end := now.Load() / step * step
		params := url.Values{"query": {`sum by (instance) (rate(node_cpu_seconds_total[5m]))`}, "step": {"60"},
			"start": {formatTime(end - 7*24*3600_000)}, "end": {formatTime(end)}}
		before := testutil.ToFloat64(f.metrics.downstreamSeconds)
		r := httptest.NewRequestWithContext(tenantCtx(t.Context()), http.MethodGet, "/api/v1/query_range?"+params.Encode(), nil)
		for k, v := range header {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		_, want := get(t, engine, params)
		_, got := decodeAnswer(t, w)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("cached answer differs:\nengine   %.500v\nfrontend %.500v", want, got)
		}
		return testutil.ToFloat64(f.metrics.downstreamSeconds) - before
	}
	week := (7*24*time.Hour + time.Minute).Seconds()
	if got := refresh(nil); got != week {
		t.Fatalf("first refresh read %vs, want the whole %vs", got, week)
	}
	now.Add(time.Minute.Milliseconds())
	newPart := (cfg.MaxCacheFreshness + 2*time.Minute).Seconds()
	if got := refresh(nil); got > newPart {
		t.Fatalf("second refresh read %vs, want at most %vs (the fresh part and the new minute)", got, newPart)
	}
	hits := testutil.ToFloat64(f.metrics.cacheHits)
	if hits < 7 {
		t.Fatalf("%v cache hits, want one for each of the 8 days but the newest", hits)
	}
	if got := refresh(http.Header{"Cache-Control": {"no-store"}}); got != week {
		t.Fatalf("with no-store the refresh read %vs, want %vs", got, week)
	}
	gen.Add(1)
	if got := refresh(nil); got != week {
		t.Fatalf("after a new generation the refresh read %vs, want %vs", got, week)
	}
}

func decodeAnswer(t *testing.T, w *httptest.ResponseRecorder) (int, any) {
	t.Helper()
	h := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(w.Code)
		_, _ = rw.Write(w.Body.Bytes())
	})
	return get(t, h, url.Values{})
}
