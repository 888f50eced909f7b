package ingester

import (
	"context"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// defaults returns the ingester configuration and limits the flags default to.
func defaults() (Config, limits.Limits) {
	var cfg Config
	var lim limits.Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	return cfg, lim
}

func testIngester(t testing.TB, dir string, mod func(*Config, *limits.Limits)) *Ingester {
	t.Helper()
	cfg, lim := defaults()
	cfg.Dir = dir
	if mod != nil {
		mod(&cfg, &lim)
	}
	ing, err := New(cfg, limits.NewOverrides(lim), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = ing.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !ing.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("ingester not ready after 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ing
}

func request(name string, ts int64, v float64, exemplars bool, meta remotewrite.Metadata) *remotewrite.Request {
	s := remotewrite.Series{
		Labels:   []labels.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "j"}},
		Samples:  []remotewrite.Sample{{Timestamp: ts, Value: v}},
		Metadata: meta,
	}
	if exemplars {
		s.Exemplars = []remotewrite.Exemplar{{Labels: []labels.Label{{Name: "trace_id", Value: "abc"}}, Value: v, Timestamp: ts}}
	}
	return &remotewrite.Request{Version: remotewrite.V2, Series: []remotewrite.Series{s}}
}

func samples(t *testing.T, ing *Ingester, tenant, name string) []float64 {
	t.Helper()
	var out []float64
	eachSample(t, ing, tenant, name, func(typ chunkenc.ValueType, it chunkenc.Iterator) {
		if typ == chunkenc.ValFloat {
			_, v := it.At()
			out = append(out, v)
		}
	})
	return out
}

// eachSample calls f for every sample, of any type, of the series named
// name, with the iterator positioned on it.
func eachSample(t *testing.T, ing *Ingester, tenant, name string, f func(chunkenc.ValueType, chunkenc.Iterator)) {
	t.Helper()
	q, err := ing.Querier(t.Context(), tenant, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			f(typ, it)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRestartReplaysEverything(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UnixMilli()
	meta := remotewrite.Metadata{Type: model.MetricTypeCounter, Help: "Things.", Unit: "things"}
	func() {
		ing := testIngester(t, dir, nil)
		for i := range 10 {
			res, err := ing.Push(t.Context(), "a", request("things_total", now+int64(i), float64(i), i == 9, meta))
			if err != nil || res.Rejected() {
				t.Fatalf("push: %v %v", err, res.Message(1))
			}
		}
		if _, err := ing.Push(t.Context(), "b", request("other", now, 1, false, remotewrite.Metadata{})); err != nil {
			t.Fatal(err)
		}
		if err := ing.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	ing := testIngester(t, dir, nil)
	if got := samples(t, ing, "a", "things_total"); len(got) != 10 || got[9] != 9 {
		t.Fatalf("after restart tenant a has %v", got)
	}
	if got := samples(t, ing, "b", "other"); len(got) != 1 {
		t.Fatalf("after restart tenant b has %v", got)
	}
	md := map[string][]metadata.Metadata{}
	if err := ing.Metadata(t.Context(), "a", "", -1, -1, md); err != nil {
		t.Fatal(err)
	}
	if want := (metadata.Metadata{Type: model.MetricTypeCounter, Help: "Things.", Unit: "things"}); len(md["things_total"]) != 1 || md["things_total"][0] != want {
		t.Fatalf("metadata after restart: %v", md)
	}
	eq, err := ing.ExemplarQuerier(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	res, err := eq.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "things_total")})
	if err != nil || len(res) != 1 || len(res[0].Exemplars) != 1 {
		t.Fatalf("exemplars after restart: %v %v", res, err)
	}
}

func TestExemplarBufferIsLazy(t *testing.T) {
	dir := t.TempDir()
	ing := testIngester(t, dir, nil)
	now := time.Now().UnixMilli()
	if _, err := ing.Push(t.Context(), "plain", request("m", now, 1, false, remotewrite.Metadata{})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "plain", exemplarsMarker)); err == nil {
		t.Fatal("a tenant that sent no exemplar got an exemplar buffer")
	}
	res, err := ing.Push(t.Context(), "ex", request("m", now, 1, true, remotewrite.Metadata{}))
	if err != nil || res.Exemplars != 1 {
		t.Fatalf("push with exemplar: stored %d exemplars, err %v", res.Exemplars, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ex", exemplarsMarker)); err != nil {
		t.Fatalf("exemplar marker missing: %v", err)
	}
}

func TestMaxTenants(t *testing.T) {
	ing := testIngester(t, t.TempDir(), func(c *Config, _ *limits.Limits) { c.MaxTenants = 2 })
	now := time.Now().UnixMilli()
	for _, tenant := range []string{"a", "b"} {
		if _, err := ing.Push(t.Context(), tenant, request("m", now, 1, false, remotewrite.Metadata{})); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ing.Push(t.Context(), "c", request("m", now, 1, false, remotewrite.Metadata{}))
	if !errors.Is(err, ErrTooManyTenants) {
		t.Fatalf("third tenant: %v, want ErrTooManyTenants", err)
	}
}

func TestFamilyName(t *testing.T) {
	for _, tc := range []struct {
		metric string
		typ    model.MetricType
		want   string
	}{
		{"http_seconds_bucket", model.MetricTypeHistogram, "http_seconds"},
		{"http_seconds_count", model.MetricTypeHistogram, "http_seconds"},
		{"http_seconds", model.MetricTypeHistogram, "http_seconds"},
		{"rpc_seconds_sum", model.MetricTypeSummary, "rpc_seconds"},
		{"rpc_seconds_bucket", model.MetricTypeSummary, "rpc_seconds_bucket"},
		{"requests_total", model.MetricTypeCounter, "requests_total"},
		{"queue_count", model.MetricTypeGauge, "queue_count"},
	} {
		if got := familyName(tc.metric, tc.typ); got != tc.want {
			t.Errorf("familyName(%q, %s) = %q, want %q", tc.metric, tc.typ, got, tc.want)
		}
	}
}

func TestMetadataLimitPerFamily(t *testing.T) {
	s := newMetadataStore(filepath.Join(t.TempDir(), "m.json"))
	for _, h := range []string{"one", "two", "three", "two"} {
		s.add("f", metadata.Metadata{Type: model.MetricTypeGauge, Help: h}, 2)
	}
	got := map[string][]metadata.Metadata{}
	s.get("f", -1, -1, got)
	if len(got["f"]) != 2 || got["f"][0].Help != "two" || got["f"][1].Help != "three" {
		t.Fatalf("kept %v, want the newest two (two, three)", got["f"])
	}
}

// TestStaleCachedReference pushes a series, lets the head delete it (its
// block is cut and shipped away), and pushes it again: the cached reference
// is stale and the sample must still be stored.
func TestStaleCachedReference(t *testing.T) {
	ing := testIngester(t, t.TempDir(), func(c *Config, _ *limits.Limits) { c.BlockRange = time.Minute; c.Retention = time.Minute })
	now := time.Now().UnixMilli()
	key := func(r *remotewrite.Request) *remotewrite.Request {
		r.Series[0].Key = remotewrite.SeriesKey{H1: 42, H2: 7} // as the decoder would compute it
		return r
	}
	if _, err := ing.Push(t.Context(), "a", key(request("gone_and_back", now-10*time.Minute.Milliseconds(), 1, false, remotewrite.Metadata{}))); err != nil {
		t.Fatal(err)
	}
	tn, _ := ing.tenant(t.Context(), "a", false)
	defer tn.release()
	if _, ok := tn.refs.get(remotewrite.SeriesKey{H1: 42, H2: 7}); !ok {
		t.Fatal("the series was not cached")
	}
	if err := ing.Flush("a"); err != nil { // cuts the head: the series leaves it
		t.Fatal(err)
	}
	if n := tn.db.Head().NumSeries(); n != 0 {
		t.Fatalf("head still has %d series", n)
	}
	res, err := ing.Push(t.Context(), "a", key(request("gone_and_back", now, 2, false, remotewrite.Metadata{})))
	if err != nil || res.Samples != 1 || res.Rejected() {
		t.Fatalf("push after the series left the head: %v, %d stored, %s", err, res.Samples, res.Message(1))
	}
	if got := samples(t, ing, "a", "gone_and_back"); len(got) != 2 || got[1] != 2 {
		t.Fatalf("samples %v, want [1 2]", got)
	}
}
