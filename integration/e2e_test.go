package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// senders are the two Prometheus servers of the end-to-end test: one per
// remote-write protocol, each writing to its own tenant and labelling its
// targets with source=<name>.
var senders = []struct {
	name, tenant, proto, features string
}{
	{"rw1", "tenant-rw1", "prometheus.WriteRequest", "exemplar-storage"},
	{"rw2", "tenant-rw2", "io.prometheus.write.v2.Request", "exemplar-storage,metadata-wal-records"},
}

func promConfig(self, target, source, fp, tenant, proto string) string {
	return fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["%[1]s"], labels: {source: %[3]s}}]
  - job_name: target
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    static_configs: [{targets: ["%[2]s"], labels: {source: %[3]s}}]
remote_write:
  - url: %[4]s/api/v1/push
    headers: {X-Scope-OrgID: %[5]s}
    protobuf_message: %[6]s
    send_exemplars: true
    send_native_histograms: true
    queue_config: {batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}
    metadata_config: {send: true, send_interval: 2s}
`, self, target, source, fp, tenant, proto)
}

// comparedQueries are evaluated by FluxPulse and by the Prometheus that sent
// the data; the answers must be identical.
var comparedQueries = []string{
	`up`,
	`up{job="target"} == 1`,
	`rate(fp_test_requests_total[30s])`,
	`sum by (path) (increase(fp_test_requests_total[30s]))`,
	`histogram_quantile(0.9, sum by (le) (rate(fp_test_latency_seconds_bucket[30s])))`,
	`histogram_quantile(0.9, sum(rate(fp_test_latency_seconds[30s])))`,
	`histogram_count(rate(fp_test_latency_seconds[30s]))`,
	`fp_test_latency_seconds`,
	`avg_over_time(fp_test_temperature_celsius[30s])`,
	`sum by (job, handler) (rate(prometheus_http_requests_total[30s]))`,
	`count by (job) ({__name__=~"go_.+"})`,
	`topk(3, go_goroutines)`,
	`scrape_samples_scraped`,
	`max_over_time(process_resident_memory_bytes[30s]) - min_over_time(process_resident_memory_bytes[30s])`,
}

// TestRemoteWriteFromPrometheus runs two real Prometheus servers that scrape
// real targets and remote-write to one FluxPulse, with remote write 1.0 and
// 2.0, and checks that FluxPulse answers every query, label and series call
// exactly like the Prometheus that sent the data, that tenants never see
// each other, and that a federated read sees both.
func TestRemoteWriteFromPrometheus(t *testing.T) {
	fp := startFluxPulse(t, "-auth.mode=header")
	proms := make([]*prometheusProc, len(senders))
	for k, s := range senders {
		target := startTarget(t, "fp_only_"+s.name+"_total")
		proms[k] = startPrometheus(t, func(self string) string {
			return promConfig(self, target, s.name, fp.url(), s.tenant, s.proto)
		}, s.features)
	}

	start, end := waitForSenders(t, fp.url())
	compareAll(t, fp.url(), proms, start, end)
}

// waitForSenders waits until FluxPulse (its query API at base) has more
// data from both senders than the longest window of the compared queries
// (30s), so that every window lies in data both have, and returns the
// range to compare.
func waitForSenders(t *testing.T, base string) (start, end time.Time) {
	t.Helper()
	var tenants []string
	for _, s := range senders {
		tenants = append(tenants, s.tenant)
	}
	return waitForTenants(t, base, tenants...)
}

// waitForTenants is waitForSenders for the senders of the given tenants.
func waitForTenants(t *testing.T, base string, tenants ...string) (start, end time.Time) {
	t.Helper()
	first := make([]time.Time, len(tenants))
	testbin.Eventually(t, time.Minute, func() error {
		for k, tenant := range tenants {
			if first[k].IsZero() && len(instant(t, base+"/prometheus", `up{job="target"}`, time.Now(), tenant)) > 0 {
				first[k] = time.Now()
			}
			if first[k].IsZero() {
				return fmt.Errorf("no data of %s yet", tenant)
			}
		}
		return nil
	})
	start = slices.MaxFunc(first, time.Time.Compare).Add(35 * time.Second).Truncate(time.Second)
	testbin.Eventually(t, 2*time.Minute, func() error {
		if time.Now().Before(start.Add(15 * time.Second)) {
			return fmt.Errorf("collecting data until %s", start.Add(15*time.Second).Format(time.TimeOnly))
		}
		return nil
	})
	return start, time.Now().Add(-5 * time.Second).Truncate(time.Second)
}

// compareAll compares FluxPulse's answers (its query API at base) with
// each sender's, and checks isolation and federation.
func compareAll(t *testing.T, base string, proms []*prometheusProc, start, end time.Time) {
	for k, s := range senders {
		t.Run("compare/"+s.name, func(t *testing.T) {
			compareWithPrometheus(t, base+"/prometheus", proms[k].url, s.tenant, start, end)
		})
	}
	t.Run("isolation", func(t *testing.T) { checkIsolation(t, base, start, end) })
	t.Run("federation", func(t *testing.T) { checkFederation(t, base, end) })
}

func compareWithPrometheus(t *testing.T, fpBase, promBase, tenant string, start, end time.Time) {
	rng := url.Values{"start": {ts(start)}, "end": {ts(end)}}
	type call struct {
		path   string
		params url.Values
	}
	var calls []call
	for _, q := range comparedQueries {
		calls = append(calls,
			call{"/api/v1/query", url.Values{"query": {q}, "time": {ts(end)}}},
			call{"/api/v1/query_range", with(rng, "query", q, "step", "1")},
		)
	}
	calls = append(calls,
		call{"/api/v1/labels", rng},
		call{"/api/v1/labels", with(rng, "match[]", `{job="target"}`)},
		call{"/api/v1/label/job/values", rng},
		call{"/api/v1/label/__name__/values", with(rng, "match[]", `{job="target"}`)},
		call{"/api/v1/series", with(rng, "match[]", `up`, "match[]", `{__name__=~"fp_test_.+"}`)},
		call{"/api/v1/query_exemplars", with(rng, "query", `fp_test_requests_total`)},
		call{"/api/v1/query_exemplars", with(rng, "query", `{__name__=~"fp_.+"}`)},
		call{"/api/v1/format_query", url.Values{"query": {`sum(rate(x[5m]))by(a)`}}},
	)
	for _, c := range calls {
		want := apiData(t, promBase, c.path, c.params, "")
		got := apiData(t, fpBase, c.path, c.params, tenant)
		if w, g := normalize(want), normalize(got); !reflect.DeepEqual(w, g) {
			t.Errorf("%s?%s differs\nprometheus: %s\nfluxpulse:  %s", c.path, c.params.Encode(), short(w), short(g))
		}
	}
	// The comparisons above are only worth something if the data is there.
	for _, q := range []string{`fp_test_latency_seconds`, `rate(fp_test_requests_total[30s])`, `up`} {
		res := instant(t, fpBase, q, end, tenant)
		if len(res) == 0 {
			t.Errorf("%s: no result", q)
		}
		if q == `fp_test_latency_seconds` && len(res) > 0 && res[0].(map[string]any)["histogram"] == nil {
			t.Errorf("%s is not a native histogram: %v", q, short(res))
		}
	}
	if ex := apiData(t, fpBase, "/api/v1/query_exemplars", with(rng, "query", `fp_test_requests_total`), tenant); len(ex.([]any)) == 0 {
		t.Error("no exemplars stored")
	}
	// Errors have Prometheus's shape and status too.
	for _, p := range []url.Values{{"query": {"sum("}}, {"query": {"up"}, "time": {"yesterday"}}} {
		ws, wb := api(t, promBase, "/api/v1/query", p, "")
		gs, gb := api(t, fpBase, "/api/v1/query", p, tenant)
		if ws != gs || string(wb) != string(gb) {
			t.Errorf("error for %v: prometheus %d %s, fluxpulse %d %s", p, ws, wb, gs, gb)
		}
	}
	// Metadata arrives on its own schedule: wait for it, then compare the
	// families of the scraped test target.
	// (Synthetic series such as up are left out: Prometheus's API has no
	// metadata for them, yet its 2.0 sender sends some.)
	for _, metric := range []string{"fp_test_requests_total", "fp_test_latency_seconds", "fp_test_temperature_celsius", "go_goroutines"} {
		want := apiData(t, promBase, "/api/v1/metadata", url.Values{"metric": {metric}}, "")
		testbin.Eventually(t, 30*time.Second, func() error {
			got := apiData(t, fpBase, "/api/v1/metadata", url.Values{"metric": {metric}}, tenant)
			if !reflect.DeepEqual(normalize(want), normalize(got)) {
				return fmt.Errorf("metadata of %s: prometheus %s, fluxpulse %s", metric, short(want), short(got))
			}
			return nil
		})
	}
}

// normalize sorts lists whose order the API does not define, so that
// answers can be compared with reflect.DeepEqual.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		slices.SortFunc(out, func(a, b any) int { return strings.Compare(key(a), key(b)) })
		return out
	}
	return v
}

func key(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func short(v any) string {
	s := key(v)
	if len(s) > 3000 && os.Getenv("FLUXPULSE_TEST_FULL_DIFF") == "" {
		s = s[:3000] + "…"
	}
	return s
}

// checkIsolation asks each tenant, through every read endpoint, for the
// other tenant's data and expects to find none.
func checkIsolation(t *testing.T, base string, start, end time.Time) {
	rng := url.Values{"start": {ts(start)}, "end": {ts(end)}}
	for k, s := range senders {
		other := senders[1-k]
		fpb := base + "/prometheus"
		if res := instant(t, fpb, fmt.Sprintf(`{source=%q}`, other.name), end, s.tenant); len(res) != 0 {
			t.Errorf("%s sees %d series of %s", s.tenant, len(res), other.tenant)
		}
		if res := instant(t, fpb, fmt.Sprintf(`count({source=%q})`, s.name), end, s.tenant); len(res) != 1 {
			t.Errorf("%s does not see its own series", s.tenant)
		}
		vals := apiData(t, fpb, "/api/v1/label/source/values", rng, s.tenant)
		if !reflect.DeepEqual(vals, []any{s.name}) {
			t.Errorf("%s: label values of source = %v, want [%s]", s.tenant, vals, s.name)
		}
		names := apiData(t, fpb, "/api/v1/label/__name__/values", rng, s.tenant).([]any)
		if slices.Contains(names, any("fp_only_"+other.name+"_total")) || !slices.Contains(names, any("fp_only_"+s.name+"_total")) {
			t.Errorf("%s: metric names %v", s.tenant, names)
		}
		series := apiData(t, fpb, "/api/v1/series", withMatch(rng, `{__name__=~".+"}`), s.tenant).([]any)
		for _, se := range series {
			if se.(map[string]any)["source"] != s.name {
				t.Fatalf("%s: series API returned %v", s.tenant, se)
			}
		}
		ex := apiData(t, fpb, "/api/v1/query_exemplars", url.Values{"query": {"fp_only_" + other.name + "_total"}, "start": {ts(start)}, "end": {ts(end)}}, s.tenant)
		if len(ex.([]any)) != 0 {
			t.Errorf("%s sees exemplars of %s: %v", s.tenant, other.tenant, short(ex))
		}
		md := apiData(t, fpb, "/api/v1/metadata", nil, s.tenant).(map[string]any)
		if _, ok := md["fp_only_"+other.name+"_total"]; ok {
			t.Errorf("%s sees metadata of %s", s.tenant, other.tenant)
		}
		if n := remoteReadSeries(t, base, s.tenant, other.name, start, end); n != 0 {
			t.Errorf("%s reads %d series of %s over remote read", s.tenant, n, other.tenant)
		}
		if n := remoteReadSeries(t, base, s.tenant, s.name, start, end); n == 0 {
			t.Errorf("%s reads none of its own series over remote read", s.tenant)
		}
		// An unknown tenant sees nothing and gets no storage.
		if res := instant(t, fpb, `{__name__=~".+"}`, end, "nobody"); len(res) != 0 {
			t.Errorf("tenant nobody sees %d series", len(res))
		}
		status, _ := api(t, fpb, "/api/v1/query", url.Values{"query": {"up"}}, "")
		if status != http.StatusUnauthorized {
			t.Errorf("query without tenant: %d, want 401", status)
		}
	}
}

func withMatch(v url.Values, m string) url.Values {
	out := url.Values{"match[]": {m}}
	for k, vs := range v {
		out[k] = vs
	}
	return out
}

// checkFederation reads both tenants at once.
func checkFederation(t *testing.T, base string, end time.Time) {
	both := senders[0].tenant + "|" + senders[1].tenant
	fpb := base + "/prometheus"
	res := instant(t, fpb, `count by (__tenant_id__, source) (up)`, end, both)
	got := map[string]string{}
	for _, r := range res {
		m := r.(map[string]any)["metric"].(map[string]any)
		got[m["__tenant_id__"].(string)] = m["source"].(string)
	}
	want := map[string]string{senders[0].tenant: senders[0].name, senders[1].tenant: senders[1].name}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("federated count by tenant: %v, want %v", got, want)
	}
	vals := apiData(t, fpb, "/api/v1/label/__tenant_id__/values", nil, both)
	if !reflect.DeepEqual(vals, []any{senders[0].tenant, senders[1].tenant}) {
		t.Errorf("federated __tenant_id__ values: %v", vals)
	}
	one := instant(t, fpb, fmt.Sprintf(`count(up{__tenant_id__=%q})`, senders[1].tenant), end, both)
	all := instant(t, fpb, `count(up)`, end, senders[1].tenant)
	if !reflect.DeepEqual(valueOf(one), valueOf(all)) {
		t.Errorf("federated query filtered on __tenant_id__: %v, tenant alone: %v", one, all)
	}
}

func valueOf(res []any) any {
	if len(res) != 1 {
		return nil
	}
	return res[0].(map[string]any)["value"].([]any)[1]
}
