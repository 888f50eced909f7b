package integration

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// nativeHistogramQueries are the compared queries that read native
// histograms, which OpenMetrics 1.0 (and so promtool's importer) cannot
// carry: the export leaves those samples out.
var nativeHistogramQueries = []string{
	`histogram_quantile(0.9, sum(rate(fp_test_latency_seconds[30s])))`,
	`histogram_count(rate(fp_test_latency_seconds[30s]))`,
	`fp_test_latency_seconds`,
}

// TestOpenMetricsExportToPrometheus is #14's portability: a real
// Prometheus scrapes real targets and remote-writes to FluxPulse; the
// tenant's OpenMetrics export, turned into blocks by a real `promtool tsdb
// create-blocks-from openmetrics` (v0.316.0), is served by a real
// Prometheus 3.16 with the same answers as FluxPulse to every compared
// query that does not read native histograms, and the same labels and
// series.
func TestOpenMetricsExportToPrometheus(t *testing.T) {
	fp := startFluxPulse(t, "-auth.mode=header")
	s := senders[0]
	target := startTarget(t, "fp_only_"+s.name+"_total")
	startPrometheus(t, func(self string) string { return promConfig(self, target, s.name, fp.url(), s.tenant, s.proto) }, s.features)
	start, end := waitForTenants(t, fp.url(), s.tenant)

	status, body := api(t, fp.url(), "/api/v1/export", url.Values{"match[]": {`{__name__=~".+"}`}, "format": {"openmetrics"}}, s.tenant)
	if status != 200 || !strings.HasSuffix(string(body), "# EOF\n") {
		t.Fatalf("export: %d %.300s", status, body)
	}
	dir := t.TempDir()
	om, data := filepath.Join(dir, "export.om"), filepath.Join(dir, "data")
	if err := os.WriteFile(om, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testbin.Promtool.Path(t), "tsdb", "create-blocks-from", "openmetrics", om, data).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	t.Logf("exported %d bytes; promtool wrote:\n%s", len(body), out)
	imported := startPrometheusOn(t, func(string) string { return "global: {}\n" }, "", data)

	rng := url.Values{"start": {ts(start)}, "end": {ts(end)}}
	notNative := `__name__!="fp_test_latency_seconds"`
	var calls [][2]any
	for _, q := range comparedQueries {
		if slices.Contains(nativeHistogramQueries, q) {
			continue
		}
		calls = append(calls, [2]any{"/api/v1/query", url.Values{"query": {q}, "time": {ts(end)}}},
			[2]any{"/api/v1/query_range", with(rng, "query", q, "step", "1")})
	}
	calls = append(calls,
		[2]any{"/api/v1/labels", rng},
		[2]any{"/api/v1/label/job/values", rng},
		[2]any{"/api/v1/label/__name__/values", with(rng, "match[]", `{job="target", `+notNative+`}`)},
		[2]any{"/api/v1/series", with(rng, "match[]", `up`, "match[]", `{__name__=~"fp_test_.+", `+notNative+`}`)},
	)
	for _, c := range calls {
		path, params := c[0].(string), c[1].(url.Values)
		want := apiData(t, imported.url, path, params, "")
		got := apiData(t, fp.url()+"/prometheus", path, params, s.tenant)
		if w, g := normalize(want), normalize(got); !reflect.DeepEqual(w, g) {
			t.Errorf("%s?%s differs\nimported Prometheus: %s\nfluxpulse:          %s", path, params.Encode(), short(w), short(g))
		}
	}
	if res := instant(t, imported.url, `rate(fp_test_requests_total[30s])`, end, ""); len(res) == 0 {
		t.Fatal("the imported Prometheus has no data: the comparison proves nothing")
	}
}
