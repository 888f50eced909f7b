package distributor_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// env is a distributor in front of a real ingester, behind the tenantauth
// middleware, served over HTTP on loopback.
type env struct {
	url string
	dir string
	ing *ingester.Ingester
}

// newDistributor returns a distributor over a real ingester in a temporary
// directory, with default flags changed by mod.
func newDistributor(t testing.TB, mod func(*limits.Limits, *distributor.Config)) (*distributor.Distributor, *ingester.Ingester, string) {
	t.Helper()
	return newDistributorWith(t, mod, nil)
}

// newDistributorWith is newDistributor with the ingester's flags changed by
// imod as well.
func newDistributorWith(t testing.TB, mod func(*limits.Limits, *distributor.Config), imod func(*ingester.Config)) (*distributor.Distributor, *ingester.Ingester, string) {
	t.Helper()
	var lim limits.Limits
	var dcfg distributor.Config
	var icfg ingester.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	lim.RegisterFlags(fs)
	dcfg.RegisterFlags(fs)
	icfg.RegisterFlags(fs)
	if mod != nil {
		mod(&lim, &dcfg)
	}
	if imod != nil {
		imod(&icfg)
	}
	icfg.Dir = t.TempDir()
	ov := limits.NewOverrides(lim)
	ing, err := ingester.New(icfg, ov, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ing.Close() })
	d, err := distributor.New(dcfg, ing, ov, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, ing, icfg.Dir
}

func newEnv(t *testing.T, mod func(*limits.Limits, *distributor.Config)) *env {
	t.Helper()
	return newEnvWith(t, mod, nil)
}

func newEnvWith(t *testing.T, mod func(*limits.Limits, *distributor.Config), imod func(*ingester.Config)) *env {
	t.Helper()
	d, ing, dir := newDistributorWith(t, mod, imod)
	auth, err := tenantauth.New(tenantauth.Config{Mode: "header"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(auth.Middleware(tenantauth.ScopeWrite, tenantauth.PlainError, d))
	t.Cleanup(srv.Close)
	return &env{url: srv.URL, dir: dir, ing: ing}
}

const (
	ctV1 = "application/x-protobuf"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

func encodeV1(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

func encodeV2(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

type response struct {
	status  int
	body    string
	written [3]string // samples, histograms, exemplars headers
	header  http.Header
}

func (e *env) post(t testing.TB, tenant, contentType, encoding string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/api/v1/push", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(b), header: resp.Header, written: [3]string{
		resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"),
		resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"),
		resp.Header.Get("X-Prometheus-Remote-Write-Exemplars-Written"),
	}}
}

// count returns how many samples the tenant has for series matching the
// metric name.
func (e *env) count(t testing.TB, tenant, metric string) int {
	t.Helper()
	q, err := e.ing.Querier(context.Background(), tenant, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, metric))
	n := 0
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func ts(name string, kv ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}
}

func TestRejections(t *testing.T) {
	e := newEnv(t, func(l *limits.Limits, d *distributor.Config) {
		l.MaxLabelNamesPerSeries = 4
		l.MaxLabelNameLength = 20
		l.MaxLabelValueLength = 30
		d.MaxRequestSize = 4096
		d.MaxDecompressedRequestSize = 8192
	})
	now := time.Now().UnixMilli()
	good := ts("ok_metric", "a", "b")
	future := ts("future_metric")
	future.Samples[0].Timestamp = now + time.Hour.Milliseconds()
	unsorted := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "z", Value: "1"}, {Name: "a", Value: "2"}}, Samples: good.Samples}
	dup := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: "1"}, {Name: "a", Value: "2"}}, Samples: good.Samples}
	noName := prompb.TimeSeries{Labels: []prompb.Label{{Name: "job", Value: "x"}}, Samples: good.Samples}
	emptyName := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: ""}, {Name: "job", Value: "x"}}, Samples: good.Samples}
	badUTF8 := ts("m", "a", "\xff\xfe")
	badNameUTF8 := ts("m", "\xffa", "v")
	emptyLabelName := prompb.TimeSeries{Labels: []prompb.Label{{Name: "", Value: "v"}, {Name: "__name__", Value: "m"}}, Samples: good.Samples}
	huge := make([]byte, 20000)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range huge {
		huge[i] = byte(rnd.Uint32()) // incompressible
	}

	for _, tc := range []struct {
		name        string
		contentType string
		encoding    string
		tenant      string
		body        []byte
		status      int
		msg         []string // substrings of the response body
	}{
		{name: "valid", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{good}}), status: 204},
		{name: "no tenant", tenant: "-", body: encodeV1(t, &prompb.WriteRequest{}), status: 401, msg: []string{"X-Scope-OrgID"}},
		{name: "malformed tenant", tenant: "../etc", body: encodeV1(t, &prompb.WriteRequest{}), status: 400, msg: []string{"tenant ID", "../etc"}},
		{name: "federated write", tenant: "a|b", body: encodeV1(t, &prompb.WriteRequest{}), status: 400, msg: []string{"only reads may name several"}},
		{name: "unsupported content type", contentType: "application/json", body: []byte("{}"), status: 415, msg: []string{"application/json"}},
		{name: "unsupported proto", contentType: "application/x-protobuf;proto=foo.Bar", body: []byte{}, status: 415, msg: []string{"foo.Bar"}},
		{name: "unsupported encoding", encoding: "gzip", body: []byte{}, status: 415, msg: []string{"gzip"}},
		{name: "not snappy", body: []byte("definitely not snappy"), status: 400, msg: []string{"snappy"}},
		{name: "not protobuf", body: snappy.Encode(nil, []byte{0x0a, 0x7f}), status: 400, msg: []string{"not a valid protobuf"}},
		{name: "body too large", body: snappy.Encode(nil, huge), status: 413, msg: []string{"-distributor.max-request-size", "4096"}},
		{name: "decompressed too large", body: snappy.Encode(nil, make([]byte, 9000)), status: 413, msg: []string{"-distributor.max-decompressed-request-size", "8192"}},
		{name: "unsorted labels", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{unsorted, good}}), status: 400,
			msg: []string{"rejected 1 of 2 series", "out of order", `"a" comes after "z"`}},
		{name: "duplicate label", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{dup}}), status: 400, msg: []string{`label name "a" more than once`}},
		{name: "no metric name", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{noName}}), status: 400, msg: []string{"no metric name", `job="x"`}},
		{name: "empty metric name", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{emptyName}}), status: 400, msg: []string{"no metric name"}},
		{name: "invalid utf8 value", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{badUTF8}}), status: 400, msg: []string{`label "a" that is not valid UTF-8`}},
		{name: "invalid utf8 name", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{badNameUTF8}}), status: 400, msg: []string{"not valid UTF-8"}},
		{name: "empty label name", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{emptyLabelName}}), status: 400, msg: []string{"empty name"}},
		{name: "too many labels", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("m", "a", "1", "b", "2", "c", "3", "d", "4")}}), status: 400,
			msg: []string{"has 5 labels, the limit is 4", "-validation.max-label-names-per-series"}},
		{name: "label name too long", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("m", strings.Repeat("n", 21), "v")}}), status: 400,
			msg: []string{"label name of 21 bytes", "-validation.max-length-label-name"}},
		{name: "label value too long", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("m", "a", strings.Repeat("v", 31))}}), status: 400,
			msg: []string{"value of 31 bytes for label \"a\", the limit is 30", "-validation.max-length-label-value"}},
		{name: "sample in the future", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{future}}), status: 400,
			msg: []string{"too far in the future", "-validation.create-grace-period"}},
		{name: "no samples", body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: good.Labels}}}), status: 400, msg: []string{"has no samples, histograms or exemplars"}},
		{name: "v2 symbol out of range", contentType: ctV2, body: encodeV2(t, &writev2.Request{Symbols: []string{"", "__name__", "m"},
			Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 5}, Samples: []writev2.Sample{{Value: 1, Timestamp: now}}}}}), status: 400,
			msg: []string{"series 0: label reference 5 out of range of 3 symbols"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tenant := tc.tenant
			switch tenant {
			case "":
				tenant = "t-" + strings.ReplaceAll(tc.name, " ", "-")
			case "-":
				tenant = ""
			}
			ct := tc.contentType
			if ct == "" {
				ct = ctV1
			}
			enc := tc.encoding
			if enc == "" {
				enc = "snappy"
			}
			r := e.post(t, tenant, ct, enc, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body: %s", r.status, tc.status, r.body)
			}
			for _, m := range tc.msg {
				if !strings.Contains(r.body, m) {
					t.Errorf("body %q does not mention %q", r.body, m)
				}
			}
		})
	}
	// The valid series sent next to an unsorted one was stored.
	if n := e.count(t, "t-unsorted-labels", "ok_metric"); n != 1 {
		t.Errorf("valid series beside an invalid one: %d samples stored, want 1", n)
	}
	if n := e.count(t, "t-unsorted-labels", "m"); n != 0 {
		t.Errorf("invalid series: %d samples stored, want 0", n)
	}
}

func TestOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		age    time.Duration // of the late sample, behind the newest
		status int
		msg    string
	}{
		{"no window", 0, time.Minute, 400, "out-of-order window is 0 (-ingester.out-of-order-time-window"},
		{"inside window", 30 * time.Minute, time.Minute, 204, ""},
		{"outside window", 30 * time.Minute, time.Hour, 400, "outside the out-of-order window of 30m0s (-ingester.out-of-order-time-window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(l *limits.Limits, _ *distributor.Config) { l.OutOfOrderTimeWindow = tc.window })
			now := time.Now().UnixMilli()
			s := ts("ooo")
			s.Samples = []prompb.Sample{{Value: 1, Timestamp: now}}
			if r := e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}})); r.status != 204 {
				t.Fatalf("first push: %d %s", r.status, r.body)
			}
			s.Samples = []prompb.Sample{{Value: 2, Timestamp: now - tc.age.Milliseconds()}}
			r := e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}))
			if r.status != tc.status || !strings.Contains(r.body, tc.msg) {
				t.Fatalf("late sample: %d %q, want %d mentioning %q", r.status, r.body, tc.status, tc.msg)
			}
			want := 1
			if tc.status == 204 {
				want = 2
			}
			if n := e.count(t, "t", "ooo"); n != want {
				t.Fatalf("%d samples stored, want %d", n, want)
			}
		})
	}
}

func TestV2WrittenHeaders(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UnixMilli()
	st := writev2.NewSymbolTable()
	h := &histogram.Histogram{Count: 2, Sum: 3, Schema: 0, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{2}}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "a"), nil),
			Samples:   []writev2.Sample{{Value: 1, Timestamp: now - 2}, {Value: 2, Timestamp: now - 1}},
			Exemplars: []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "x"), nil), Value: 2, Timestamp: now - 1}},
			Metadata:  writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("A gauge.")}},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "h"), nil),
			Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, now, h)}},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "bad", "x", "\xff"), nil),
			Samples: []writev2.Sample{{Value: 1, Timestamp: now}}},
		// Exemplars in a series of their own, as Prometheus sends them.
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "a"), nil),
			Exemplars: []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "y"), nil), Value: 1, Timestamp: now - 2}}},
	}}
	req.Symbols = st.Symbols()
	r := e.post(t, "t", ctV2, "snappy", encodeV2(t, req))
	if r.status != 400 || !strings.Contains(r.body, "rejected 1 of 4 series") {
		t.Fatalf("status %d body %q, want 400 rejecting 1 of 4 series", r.status, r.body)
	}
	if r.written != [3]string{"2", "1", "2"} {
		t.Fatalf("written headers %v, want [2 1 2]", r.written)
	}
	// Resending the newest sample with the same value is not an error.
	req.Timeseries = req.Timeseries[:1]
	req.Timeseries[0].Samples = req.Timeseries[0].Samples[1:]
	req.Timeseries[0].Exemplars = nil
	r = e.post(t, "t", ctV2, "snappy", encodeV2(t, req))
	if r.status != 204 || r.written[0] != "1" {
		t.Fatalf("resend: %d %s %v", r.status, r.body, r.written)
	}
	// A 1.0 response has no written headers.
	r = e.post(t, "t", ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("v1")}}))
	if r.status != 204 || r.written != [3]string{} {
		t.Fatalf("v1: %d %v", r.status, r.written)
	}
	if n := e.count(t, "t", "h"); n != 1 {
		t.Fatalf("histogram samples %d, want 1", n)
	}
}

func TestTenantsAreSeparate(t *testing.T) {
	e := newEnv(t, nil)
	for _, tenant := range []string{"alpha", "beta"} {
		s := ts("shared_name", "tenant_was", tenant)
		if r := e.post(t, tenant, ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}})); r.status != 204 {
			t.Fatal(r.body)
		}
	}
	for _, tenant := range []string{"alpha", "beta"} {
		q, err := e.ing.Querier(context.Background(), tenant, math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		vs, _, err := q.LabelValues(context.Background(), "tenant_was", nil)
		q.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0] != tenant {
			t.Errorf("tenant %s sees tenant_was=%v", tenant, vs)
		}
	}
	q, _ := e.ing.Querier(context.Background(), "gamma", math.MinInt64, math.MaxInt64)
	if ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")); ss.Next() {
		t.Error("a tenant that never pushed sees series")
	}
	q.Close()
	if _, err := os.Stat(filepath.Join(e.dir, "gamma")); err == nil {
		t.Error("querying an unknown tenant created a TSDB for it")
	}
}

// TestPartialFailureKeepsOrder checks that a request is processed as sent:
// 200 series of which every 10th is invalid.
func TestPartialFailureKeepsOrder(t *testing.T) {
	e := newEnv(t, nil)
	var req prompb.WriteRequest
	for i := range 200 {
		s := ts(fmt.Sprintf("m%03d", i))
		if i%10 == 0 {
			s.Labels = append(s.Labels, prompb.Label{Name: "a", Value: "1"}, prompb.Label{Name: "a", Value: "1"})
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	r := e.post(t, "t", ctV1, "snappy", encodeV1(t, &req))
	if r.status != 400 || !strings.Contains(r.body, "rejected 20 of 200 series and 20 samples") || !strings.Contains(r.body, "(and 10 more)") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	for i := range 200 {
		want := 1
		if i%10 == 0 {
			want = 0
		}
		if n := e.count(t, "t", fmt.Sprintf("m%03d", i)); n != want {
			t.Fatalf("m%03d: %d samples, want %d", i, n, want)
		}
	}
}

// TestIngesterUnavailable checks that the ingester's typed errors reach the
// sender as retryable 503s naming their cause, not as 500s (#12).
func TestIngesterUnavailable(t *testing.T) {
	e := newEnvWith(t, nil, func(c *ingester.Config) { c.MaxTenants = 1 })
	body := encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("m")}})
	if r := e.post(t, "first", ctV1, "snappy", body); r.status != 204 {
		t.Fatalf("first tenant: %d %s", r.status, r.body)
	}
	check := func(tenant, msg string) {
		t.Helper()
		r := e.post(t, tenant, ctV1, "snappy", body)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, msg) {
			t.Fatalf("tenant %s: %d (Retry-After %q) %q, want 503 with Retry-After mentioning %q", tenant, r.status, r.header.Get("Retry-After"), r.body, msg)
		}
	}
	check("second", "-ingester.max-tenants")
	if err := e.ing.Close(); err != nil {
		t.Fatal(err)
	}
	check("first", "shutting down")
}

// TestRefusedInOneRequestAsWhenAlone sends pairs of samples that the head
// accepts one by one but drops at Commit when they come in one request
// (#12: 204, and the later sample gone). The later sample must be refused
// with the very reason it gets when sent alone after the first.
func TestRefusedInOneRequestAsWhenAlone(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().Add(-time.Minute).UnixMilli()
	sample := func(v float64, at int64) prompb.TimeSeries {
		s := ts("m", "job", "j")
		s.Samples = []prompb.Sample{{Value: v, Timestamp: at}}
		return s
	}
	for k, tc := range []struct {
		name          string
		first, second prompb.TimeSeries
	}{
		{name: "backwards in one series", first: sample(1, now), second: sample(2, now-1000)},
		{name: "same series twice, the second older", first: sample(1, now), second: sample(2, now-1000)},
		{name: "duplicate timestamp with another value", first: sample(1, now), second: sample(2, now)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			together := []prompb.TimeSeries{tc.first, tc.second}
			if tc.name == "backwards in one series" {
				s := tc.first
				s.Samples = append(slices.Clone(s.Samples), tc.second.Samples...)
				together = []prompb.TimeSeries{s}
			}
			r := e.post(t, "together-"+fmt.Sprint(k), ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: together}))
			if r.status != 400 {
				t.Fatalf("together: %d %q, want 400", r.status, r.body)
			}
			alone := "alone-" + fmt.Sprint(k)
			if r := e.post(t, alone, ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{tc.first}})); r.status != 204 {
				t.Fatalf("first alone: %d %s", r.status, r.body)
			}
			ra := e.post(t, alone, ctV1, "snappy", encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{tc.second}}))
			_, reason, _ := strings.Cut(r.body, "\n")
			_, reasonAlone, _ := strings.Cut(ra.body, "\n")
			if ra.status != 400 || reason != reasonAlone {
				t.Fatalf("together the reason is %q, alone (%d) %q", reason, ra.status, reasonAlone)
			}
		})
	}
}

// TestExemplarsWithoutData is the remote-write 2.0 receiver compliance case
// exemplars_without_data: exemplars for a series with no sample anywhere are
// stored and counted (#12: 204 with Exemplars-Written 0).
func TestExemplarsWithoutData(t *testing.T) {
	e := newEnv(t, nil)
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "orphan_metric"), nil),
		Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "orphan_trace"), nil), Value: 42, Timestamp: time.Now().UnixMilli()}},
	}}}
	req.Symbols = st.Symbols()
	r := e.post(t, "t", ctV2, "snappy", encodeV2(t, req))
	if r.status != 204 || r.written != [3]string{"0", "0", "1"} {
		t.Fatalf("%d %q written %v, want 204 with [0 0 1]", r.status, r.body, r.written)
	}
}
