package querier

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// raw is one export answer as sent.
type raw struct {
	status   int
	header   http.Header
	body     []byte
	trailers http.Header
}

// exportRaw exports, asking for gzip when gz is set (and then decoding the
// body itself, as the transport leaves a body alone when the caller set
// Accept-Encoding).
func (e *queryEnv) exportRaw(t *testing.T, params url.Values, gz bool) raw {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/export?"+params.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", "t")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if r, err = gzip.NewReader(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return raw{resp.StatusCode, resp.Header, b, resp.Trailer}
}

// parseOpenMetrics reads an export with Prometheus's own OpenMetrics
// parser, the one promtool imports with: samples by series, [ms, value].
func parseOpenMetrics(t *testing.T, b []byte) map[string][][2]float64 {
	t.Helper()
	out := map[string][][2]float64{}
	p := textparse.NewOpenMetricsParser(b, labels.NewSymbolTable())
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, ts, v := p.Series()
		var ls labels.Labels
		p.Labels(&ls)
		if ts == nil {
			t.Fatalf("%s has no timestamp", ls)
		}
		out[ls.String()] = append(out[ls.String()], [2]float64{float64(*ts), v})
	}
}

// TestExportFormats is #14's portability at the unit level: the
// OpenMetrics export reads back through Prometheus's parser with every
// timestamp and value exact (special values, UTF-8 names and escaped label
// values included), CSV has a row a sample with the labels as columns, gzip
// is used when asked, and pages (limit, after) add up to the whole.
func TestExportFormats(t *testing.T) {
	e := newQueryEnv(t)
	req := &remotewrite.Request{Series: []remotewrite.Series{{
		Labels:  []labels.Label{{Name: "__name__", Value: "my.metric"}, {Name: "odd label", Value: "a \"quoted\"\nline\\"}},
		Samples: []remotewrite.Sample{{Timestamp: e.now.UnixMilli() - 1, Value: math.Inf(-1)}, {Timestamp: e.now.UnixMilli(), Value: math.NaN()}},
	}}}
	if res, err := e.ing.Push(t.Context(), "t", req); err != nil || res.Rejected() {
		t.Fatalf("push: %v %s", err, res.Message(1))
	}
	all := url.Values{"match[]": {`{__name__=~"m|my.metric"}`}}
	om := e.exportRaw(t, with(all, "format", "openmetrics"), true)
	if om.status != 200 || om.header.Get("Content-Encoding") != "gzip" || !bytes.HasSuffix(om.body, []byte("# EOF\n")) ||
		om.trailers.Get(exportStatusTrailer) != "complete" || om.trailers.Get(exportSeriesTrailer) != "6" {
		t.Fatalf("openmetrics: %d %v %q…, trailers %v", om.status, om.header, om.body[:min(200, len(om.body))], om.trailers)
	}
	got := parseOpenMetrics(t, om.body)
	if len(got) != 6 || len(got[`{__name__="m", s="3"}`]) != 120 {
		t.Fatalf("openmetrics: %d series: %v", len(got), got)
	}
	for k, p := range got[`{__name__="m", s="3"}`] {
		if want := float64(e.now.Add(-119e9).UnixMilli() + int64(k)*1000); p[0] != want || p[1] != float64(k) {
			t.Fatalf("openmetrics sample %d: %v, want [%v %d]", k, p, want, k)
		}
	}
	odd := got[labels.FromStrings("__name__", "my.metric", "odd label", "a \"quoted\"\nline\\").String()]
	if len(odd) != 2 || !math.IsInf(odd[0][1], -1) || !math.IsNaN(odd[1][1]) || odd[1][0] != float64(e.now.UnixMilli()) {
		t.Fatalf("the UTF-8 series: %v in %q", odd, om.body)
	}

	c := e.exportRaw(t, url.Values{"match[]": {`m{s=~"1|2"}`}, "format": {"csv"}}, false)
	rows, err := csv.NewReader(bytes.NewReader(c.body)).ReadAll()
	if err != nil || c.header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %v %v", err, c.header)
	}
	if len(rows) != 241 || strings.Join(rows[0], ",") != "timestamp,value,__name__,s" || rows[1][2] != "m" || rows[1][3] != "1" || rows[240][1] != "119" {
		t.Fatalf("csv: %d rows, header %v, first %v, last %v", len(rows), rows[0], rows[1], rows[len(rows)-1])
	}
	c = e.exportRaw(t, url.Values{"match[]": {`m{s="1"}`}, "format": {"csv"}, "columns": {"s,instance"}}, false)
	if !bytes.HasPrefix(c.body, []byte("timestamp,value,s,instance\n")) || !bytes.Contains(c.body, []byte(",119,1,\n")) {
		t.Fatalf("csv with columns: %.200q", c.body)
	}

	// Pages of two series add up to the whole, and only the last page of
	// an OpenMetrics export ends with # EOF.
	var pages [][]byte
	after := ""
	for more := true; more; {
		r := e.exportRaw(t, with(all, "format", "openmetrics", "limit", "2", "after", after), false)
		last, _ := url.QueryUnescape(r.trailers.Get(exportLastTrailer))
		more, after = r.trailers.Get(exportMoreTrailer) == "true", last
		if more == bytes.HasSuffix(r.body, []byte("# EOF\n")) {
			t.Fatalf("page %d: more=%v with body ending %q", len(pages), more, r.body[max(0, len(r.body)-20):])
		}
		pages = append(pages, r.body)
	}
	if whole := parseOpenMetrics(t, bytes.Join(pages, nil)); len(pages) != 3 || fmt.Sprint(whole) != fmt.Sprint(got) {
		t.Fatalf("%d pages of 2 series: %d series", len(pages), len(whole))
	}
}

func TestExportRefusals(t *testing.T) {
	e := newQueryEnv(t)
	for _, tc := range []struct {
		name   string
		params url.Values
		want   string
	}{
		{"unknown format", url.Values{"match[]": {"m"}, "format": {"parquet"}}, `invalid parameter \"format\": \"parquet\"; formats are jsonl (the default), openmetrics and csv`},
		{"columns without csv", url.Values{"match[]": {"m"}, "columns": {"a"}}, "applies to format=csv only"},
		{"bad after", url.Values{"match[]": {"m"}, "after": {"{a="}}, `invalid parameter \"after\"`},
		{"bad limit", url.Values{"match[]": {"m"}, "limit": {"-1"}}, `invalid parameter \"limit\"`},
		{"bad start", url.Values{"match[]": {"m"}, "start": {"soon"}}, `invalid parameter \"start\"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, _, body := e.get(t, "/api/v1/export", tc.params); status != 400 || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want 400 with %s", status, body, tc.want)
			}
		})
	}
}

// FuzzOpenMetricsLine writes one sample as the OpenMetrics export does and
// reads it back with Prometheus's parser: names, label values (quotes,
// backslashes, newlines, UTF-8), the value and the millisecond timestamp
// must come back exactly (#14).
func FuzzOpenMetricsLine(f *testing.F) {
	f.Add("up", "job", "node", int64(1777629600123), 1.5)
	f.Add("my.metric", "odd label", "a \"b\"\n\\", int64(-1), math.Inf(-1))
	f.Add("x", "le", "+Inf", int64(0), math.NaN())
	f.Add("ünïcode", "ключ", "значение", int64(1<<50), -0.0)
	f.Fuzz(func(t *testing.T, name, lname, lvalue string, ms int64, v float64) {
		if name == "" || lname == "" || lname == "__name__" || lvalue == "" || !utf8.ValidString(name) || !utf8.ValidString(lname) || !utf8.ValidString(lvalue) ||
			strings.IndexByte(name+lname+lvalue, 0) >= 0 || ms > 1<<53 || ms < -(1<<53) {
			return // not a series Prometheus stores, or one the encoder leaves out
		}
		ls := labels.FromStrings("__name__", name, lname, lvalue)
		b := appendOMSeries(nil, ls)
		b = append(appendOMTimestamp(append(appendOMFloat(b, v), ' '), ms), "\n# EOF\n"...)
		p := textparse.NewOpenMetricsParser(b, labels.NewSymbolTable())
		e, err := p.Next()
		for err == nil && e != textparse.EntrySeries {
			e, err = p.Next()
		}
		if err != nil {
			t.Fatalf("%q does not parse: %v", b, err)
		}
		_, ts, got := p.Series()
		var back labels.Labels
		p.Labels(&back)
		if !labels.Equal(back, ls) || ts == nil || *ts != ms || !(got == v || math.IsNaN(got) && math.IsNaN(v)) {
			t.Fatalf("%q reads back as %s %v %v", b, back, ts, got)
		}
	})
}

// FuzzJSONString checks that the export writes label names and values
// exactly as encoding/json does.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "<&>", "\x00\x01\b\f\n\r\t\x1f", "ünï\u2028\u2029", "\xff\xfe", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// BenchmarkExport exports 2,000 series of 120 samples in each format, as
// the handler writes them (to a discarding writer): its allocations per
// series are what an export of a large tenant costs beyond its buffers.
func BenchmarkExport(b *testing.B) {
	e := newQueryEnv(b)
	req := &remotewrite.Request{}
	for s := range 2000 {
		ser := remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: "big"}, {Name: "instance", Value: fmt.Sprintf("host-%d:9100", s%50)}, {Name: "s", Value: fmt.Sprint(s)}}}
		for i := range 120 {
			ser.Samples = append(ser.Samples, remotewrite.Sample{Timestamp: e.now.UnixMilli() - int64(120-i)*1000, Value: float64(i * s)})
		}
		req.Series = append(req.Series, ser)
	}
	if res, err := e.ing.Push(b.Context(), "t", req); err != nil || res.Rejected() {
		b.Fatal(err)
	}
	for _, format := range []string{formatJSONL, formatOpenMetrics, formatCSV} {
		b.Run(format, func(b *testing.B) {
			r, _ := http.NewRequest(http.MethodGet, "/api/v1/export?match[]=big&format="+format, nil)
			r = r.WithContext(tenantauth.With(b.Context(), "bench", "t"))
			b.ReportAllocs()
			for b.Loop() {
				p, err := exportParams(withForm(r))
				if err != nil {
					b.Fatal(err)
				}
				qr, _ := e.q.queryable.Querier(p.mint, p.maxt)
				enc, err := e.q.exportEncoder(r, qr, p)
				if err != nil {
					b.Fatal(err)
				}
				ss := qr.Select(r.Context(), true, &storage.SelectHints{Start: p.mint, End: p.maxt}, p.selectors[0]...)
				if _, err := writeExport(io.Discard, ss, enc, p); err != nil {
					b.Fatal(err)
				}
				qr.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(2000*120), "ns/sample")
		})
	}
}

func withForm(r *http.Request) *http.Request {
	_ = r.ParseForm()
	return r
}

// FuzzCSVField checks that a row the CSV export writes reads back, field
// by field, through encoding/csv.
func FuzzCSVField(f *testing.F) {
	for _, s := range []string{"", "plain", "a,b", `say "hi"`, " lead", "\tx", `\.`, "line\nbreak", "ünï"} {
		f.Add(s, "second")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.Contains(a+b, "\r") || !utf8.ValidString(a+b) {
			return // encoding/csv drops a carriage return before a newline, and wants UTF-8
		}
		row := appendCSVField(append(appendCSVField(nil, a), ','), b)
		rec, err := csv.NewReader(bytes.NewReader(append(row, '\n'))).Read()
		if err != nil || len(rec) != 2 || rec[0] != a || rec[1] != b {
			t.Fatalf("%q reads back as %q (%v)", row, rec, err)
		}
	})
}
