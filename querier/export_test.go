package querier

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// exported is one line of an export as a client decodes it.
type exported struct {
	Metric     map[string]string `json:"metric"`
	Values     []any             `json:"values"`
	Timestamps []int64           `json:"timestamps"`
	Status     string            `json:"status"` // of the error line
	ErrorType  string            `json:"errorType"`
	Error      string            `json:"error"`
}

// export reads a whole export: status, lines, and the status trailer.
func (e *queryEnv) export(t *testing.T, params url.Values) (int, []exported, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/export?"+params.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", "t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lines []exported
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l exported
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d: %v: %.200s", len(lines)+1, err, sc.Bytes())
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, lines, resp.Trailer.Get(exportStatusTrailer)
}

// push stores series named name with the values, one a millisecond
// (one a second for a single series), ending now.
func (e *queryEnv) push(t *testing.T, name string, series int, values []float64) {
	t.Helper()
	req := &remotewrite.Request{}
	for s := range series {
		ser := remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: name}, {Name: "s", Value: fmt.Sprint(s)}}}
		for i, v := range values {
			ser.Samples = append(ser.Samples, remotewrite.Sample{Timestamp: e.now.UnixMilli() - int64(len(values)-i), Value: v})
		}
		req.Series = append(req.Series, ser)
	}
	if res, err := e.ing.Push(t.Context(), "t", req); err != nil || res.Rejected() {
		t.Fatalf("push: %v %s", err, res.Message(5))
	}
}

func TestExport(t *testing.T) {
	e := newQueryEnv(t)
	status, lines, trailer := e.export(t, url.Values{"match[]": {`m{s="3"}`}})
	if status != 200 || len(lines) != 1 || trailer != "complete" {
		t.Fatalf("%d, %d lines, trailer %q", status, len(lines), trailer)
	}
	if l := lines[0]; l.Metric["s"] != "3" || len(l.Values) != 120 || len(l.Timestamps) != 120 || l.Values[119] != 119.0 {
		t.Fatalf("exported %v with %d values", l.Metric, len(l.Values))
	}
	if status, _, body := e.get(t, "/api/v1/export", nil); status != 400 || !strings.Contains(body, "match[]") {
		t.Fatalf("without match[]: %d %s", status, body)
	}
	if status, lines, _ := e.export(t, url.Values{"match[]": {`{__name__="m"}`}}); status != 200 || len(lines) != 5 {
		t.Fatalf("all series: %d, %d lines", status, len(lines))
	}
}

// TestExportSpecialValues is the regression test of #12 item 3: a series
// holding NaN, ±Inf or a staleness marker made the export answer 200 with
// an empty body. They are written as the Prometheus API writes them, and
// staleness markers are left out.
func TestExportSpecialValues(t *testing.T) {
	e := newQueryEnv(t)
	stale := math.Float64frombits(value.StaleNaN)
	e.push(t, "special", 1, []float64{1, math.NaN(), math.Inf(1), math.Inf(-1), stale, 2.5e-7, 3e21})
	status, lines, trailer := e.export(t, url.Values{"match[]": {"special", `m{s="0"}`}})
	if status != 200 || len(lines) != 2 || trailer != "complete" {
		t.Fatalf("%d, %d lines, trailer %q: %+v", status, len(lines), trailer, lines)
	}
	got := lines[1]
	if got.Metric["__name__"] != "special" {
		got = lines[0]
	}
	if want := "[1 NaN +Inf -Inf 2.5e-07 3e+21]"; fmt.Sprint(got.Values) != want || len(got.Timestamps) != 6 {
		t.Fatalf("values %v (timestamps %v), want %s without the staleness marker", got.Values, got.Timestamps, want)
	}
}

// TestExportErrors checks that a failed export never looks complete (#12
// item 3): before anything was sent it is an ordinary error response;
// after, the body ends with an error line and the trailer says so. Long
// series are split into lines of at most 10,000 samples.
func TestExportErrors(t *testing.T) {
	e := newQueryEnv(t)
	vals := make([]float64, 25_000)
	for i := range vals {
		vals[i] = float64(i)
	}
	e.push(t, "long", 4, vals)
	status, lines, trailer := e.export(t, url.Values{"match[]": {`long{s="0"}`}})
	if status != 200 || len(lines) != 3 || len(lines[0].Values) != 10_000 || len(lines[2].Values) != 5_000 || lines[2].Metric["s"] != "0" || trailer != "complete" {
		t.Fatalf("a series of 25,000 samples: %d, %d lines, trailer %q", status, len(lines), trailer)
	}

	e.set(func(l *limits.Limits) { l.MaxFetchedSamplesPerQuery = 300 })
	if status, typ, body := e.get(t, "/api/v1/export", url.Values{"match[]": {"m"}}); status != 422 || typ != "cost_limit" || !strings.Contains(body, "-querier.max-fetched-samples-per-query") {
		t.Fatalf("over a limit before anything was sent: %d %s %s", status, typ, body)
	}

	e.set(func(l *limits.Limits) { l.MaxFetchedSamplesPerQuery = 60_000 })
	status, lines, trailer = e.export(t, url.Values{"match[]": {"long"}})
	last := lines[len(lines)-1]
	if status != 200 || last.Status != "error" || last.ErrorType != "cost_limit" || !strings.Contains(last.Error, "-querier.max-fetched-samples-per-query") ||
		!strings.HasPrefix(trailer, "error: the query read more than 60000 samples") {
		t.Fatalf("over a limit mid-stream: %d, last line %+v, trailer %q", status, last, trailer)
	}
	if len(lines) < 4 {
		t.Fatalf("only %d lines before the error: not mid-stream", len(lines))
	}
}
