package ruler

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/testbin"
)

const evalGroup = `name: availability
interval: 200ms
rules:
  - alert: TargetDown
    expr: up == 0
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} is down (value {{ $value }}) at {{ $externalURL }}"
  - record: job:up:sum
    expr: sum by (job) (up)
`

// appendNow writes one sample per series at the current time.
func (e *env) appendNow(series map[string]float64) {
	e.t.Helper()
	app := e.db.AppenderV2(e.t.Context())
	for s, v := range series {
		ls, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			e.t.Fatal(err)
		}
		b := labels.NewBuilder(labels.EmptyLabels())
		for _, m := range ls {
			b.Set(m.Name, m.Value)
		}
		if _, err := app.Append(0, b.Labels(), 0, time.Now().UnixMilli(), v, nil, nil, storage.AOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

// latest returns the newest sample of each series matching selector, by
// label set.
func (e *env) latest(selector string) map[string]float64 {
	e.t.Helper()
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(selector)
	if err != nil {
		e.t.Fatal(err)
	}
	q, err := e.db.Querier(0, time.Now().Add(time.Minute).UnixMilli())
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	out := map[string]float64{}
	ss := q.Select(e.t.Context(), false, nil, ms...)
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			_, v := it.At()
			out[ss.At().Labels().String()] = v
		}
	}
	return out
}

// promAPI calls the ruler's Prometheus API and decodes data into v.
func (e *env) promAPI(path, tenant string, v any) {
	e.t.Helper()
	code, body := e.do("GET", path, tenant, "")
	if code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		e.t.Fatalf("GET %s: %s (%v)", path, body, err)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		e.t.Fatal(err)
	}
}

type apiRules struct {
	Groups []struct {
		Name, File     string
		Interval       float64
		LastEvaluation time.Time
		Rules          []struct {
			Name, Type, Health, LastError, State string
			Labels, Annotations                  map[string]string
			Alerts                               []apiAlert
			LastEvaluation                       time.Time
		}
	}
	GroupNextToken string
}

type apiAlert struct {
	Labels, Annotations map[string]string
	State, Value        string
	ActiveAt            time.Time
}

// fakeAlertmanager records the alerts posted to it and the tenant header.
type fakeAlertmanager struct {
	*httptest.Server
	mu      sync.Mutex
	tenants map[string]int
	alerts  []map[string]any
}

func newFakeAlertmanager(t *testing.T) *fakeAlertmanager {
	am := &fakeAlertmanager{tenants: map[string]int{}}
	am.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alerts []map[string]any
		if r.Method != http.MethodPost || r.URL.Path != "/am/api/v2/alerts" || json.NewDecoder(r.Body).Decode(&alerts) != nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		am.mu.Lock()
		am.tenants[r.Header.Get("X-Scope-OrgID")]++
		am.alerts = append(am.alerts, alerts...)
		am.mu.Unlock()
	}))
	t.Cleanup(am.Close)
	return am
}

func (am *fakeAlertmanager) received() (map[string]int, []map[string]any) {
	am.mu.Lock()
	defer am.mu.Unlock()
	ts := map[string]int{}
	for k, v := range am.tenants {
		ts[k] = v
	}
	return ts, append([]map[string]any(nil), am.alerts...)
}

// TestEvaluation runs a recording and an alerting rule for two tenants and
// checks what they write, what the Prometheus API shows, and where alerts
// go.
func TestEvaluation(t *testing.T) {
	amA, amB := newFakeAlertmanager(t), newFakeAlertmanager(t)
	cfg := testConfig(t)
	cfg.AlertmanagerURL = amA.URL + "/am/"
	cfg.ExternalURL = "http://grafana.example/explore"
	cfg.ExternalLabels = "cluster=eu-1"
	cfg.ResendDelay = 100 * time.Millisecond
	e := newEnv(t, cfg, nil, nil)
	limB := defaultLimits(t)
	limB.RulerAlertmanagerURL = amB.URL + "/am"
	e.lim.Set(defaultLimits(t), map[string]limits.Limits{"team-b": limB})
	e.appendNow(map[string]float64{`up{job="a",instance="i1"}`: 1, `up{job="a",instance="i2"}`: 0})
	e.post("team-a", "prod", evalGroup)
	e.post("team-b", "prod", evalGroup)

	testbin.Eventually(t, 10*time.Second, func() error {
		if got := e.latest(`{__name__="job:up:sum"}`); got[`{__name__="job:up:sum", job="a"}`] != 1 {
			return fmt.Errorf("recorded %v", got)
		}
		if got := e.latest(`{__name__="ALERTS"}`); got[`{__name__="ALERTS", alertname="TargetDown", alertstate="firing", instance="i2", job="a", severity="page"}`] != 1 {
			return fmt.Errorf("ALERTS %v", got)
		}
		if got := e.latest(`{__name__="ALERTS_FOR_STATE"}`); len(got) != 1 {
			return fmt.Errorf("ALERTS_FOR_STATE %v", got)
		}
		return nil
	})

	t.Run("prometheus rules API", func(t *testing.T) { checkRulesAPI(t, e) })
	t.Run("alerts API", func(t *testing.T) {
		var got struct{ Alerts []apiAlert }
		e.promAPI("/prometheus/api/v1/alerts", "team-a", &got)
		want := "i2 is down (value 0) at http://grafana.example/explore"
		if len(got.Alerts) != 1 || got.Alerts[0].State != "firing" || got.Alerts[0].Annotations["summary"] != want || got.Alerts[0].ActiveAt.IsZero() {
			t.Fatalf("alerts %+v, want one firing with summary %q", got.Alerts, want)
		}
		if code, _ := e.do("GET", "/prometheus/api/v1/alerts", "team-a|team-b", ""); code != http.StatusBadRequest {
			t.Errorf("federated alerts request: %d, want 400", code)
		}
	})
	t.Run("notifications", func(t *testing.T) { checkNotifications(t, amA, amB) })
	t.Run("write failure is the rule's last error", func(t *testing.T) {
		e.pusher.setFail(errInjected)
		testbin.Eventually(t, 5*time.Second, func() error {
			var got apiRules
			e.promAPI("/prometheus/api/v1/rules?type=record", "team-a", &got)
			if r := got.Groups[0].Rules[0]; r.Health != "err" || !strings.Contains(r.LastError, errInjected.Error()) {
				return fmt.Errorf("health %q, last error %q", r.Health, r.LastError)
			}
			return nil
		})
		if n := testutil.ToFloat64(e.r.writes.failures.WithLabelValues("team-a")); n == 0 {
			t.Error("write failures not counted")
		}
		e.pusher.setFail(nil)
	})
	t.Run("deleting every group stops the tenant", func(t *testing.T) { checkTenantRemoval(t, e) })
}

// checkNotifications checks that each tenant's alerts reach its own
// Alertmanager, resent while firing, with the tenant header, external
// labels and generator URL.
func checkNotifications(t *testing.T, amA, amB *fakeAlertmanager) {
	for _, c := range []struct {
		am     *fakeAlertmanager
		tenant string
	}{{amA, "team-a"}, {amB, "team-b"}} {
		testbin.Eventually(t, 5*time.Second, func() error {
			tenants, alerts := c.am.received()
			if len(tenants) != 1 || tenants[c.tenant] < 2 {
				return fmt.Errorf("Alertmanager of %s got requests from %v (want several, all from %[1]s: resent while firing)", c.tenant, tenants)
			}
			l := alerts[0]["labels"].(map[string]any)
			if l["alertname"] != "TargetDown" || l["cluster"] != "eu-1" || l["instance"] != "i2" {
				return fmt.Errorf("alert labels %v", l)
			}
			if u, _ := alerts[0]["generatorURL"].(string); !strings.HasPrefix(u, "http://grafana.example/explore/graph?g0.expr=") {
				return fmt.Errorf("generator URL %q", u)
			}
			return nil
		})
	}
}

// checkTenantRemoval deletes team-b's rules: its evaluation stops, its
// metrics go, and it can come back.
func checkTenantRemoval(t *testing.T, e *env) {
	if code, body := e.do("DELETE", "/api/v1/rules/prod", "team-b", ""); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	testbin.Eventually(t, 5*time.Second, func() error {
		if e.r.tenant("team-b") != nil {
			return fmt.Errorf("team-b still evaluated")
		}
		return nil
	})
	if left := seriesOf(t, e, "team-b"); len(left) > 0 {
		t.Errorf("metrics of the removed tenant left: %v", left)
	}
	if len(seriesOf(t, e, "team-a")) == 0 {
		t.Error("no metrics for team-a")
	}
	// The tenant can come back: its metrics register again.
	e.post("team-b", "prod", evalGroup)
	testbin.Eventually(t, 5*time.Second, func() error {
		if e.r.tenant("team-b") == nil {
			return fmt.Errorf("team-b not evaluated again")
		}
		return nil
	})
}

func checkRulesAPI(t *testing.T, e *env) {
	var got apiRules
	e.promAPI("/prometheus/api/v1/rules", "team-a", &got)
	if len(got.Groups) != 1 || got.Groups[0].Name != "availability" || got.Groups[0].File != "prod" || got.Groups[0].Interval != 0.2 ||
		got.Groups[0].LastEvaluation.IsZero() || len(got.Groups[0].Rules) != 2 {
		t.Fatalf("rules %+v", got)
	}
	alert, rec := got.Groups[0].Rules[0], got.Groups[0].Rules[1]
	if alert.Type != "alerting" || alert.Health != "ok" || alert.State != "firing" || len(alert.Alerts) != 1 || alert.Labels["severity"] != "page" || alert.LastEvaluation.IsZero() {
		t.Errorf("alerting rule %+v", alert)
	}
	if rec.Type != "recording" || rec.Name != "job:up:sum" || rec.Health != "ok" {
		t.Errorf("recording rule %+v", rec)
	}
	e.post("team-a", "staging", "name: second\nrules: [{record: 'x:y', expr: '1'}]\n")
	testbin.Eventually(t, 5*time.Second, func() error {
		e.promAPI("/prometheus/api/v1/rules", "team-a", &got)
		if len(got.Groups) != 2 {
			return fmt.Errorf("%d groups", len(got.Groups))
		}
		return nil
	})
	for _, c := range []struct {
		query string
		want  string // group/rule names, in order
	}{
		{"type=alert", "availability/TargetDown"},
		{"type=record", "availability/job:up:sum second/x:y"},
		{"rule_name[]=job:up:sum&rule_name[]=x:y", "availability/job:up:sum second/x:y"},
		{"rule_group[]=second", "second/x:y"},
		{"file[]=prod", "availability/TargetDown availability/job:up:sum"},
		{"match[]=" + url.QueryEscape(`{severity="page"}`), "availability/TargetDown"},
		{"group_limit=1", "availability/TargetDown availability/job:up:sum"},
		{"rule_group[]=nope", ""},
	} {
		var got apiRules
		e.promAPI("/prometheus/api/v1/rules?"+c.query, "team-a", &got)
		var names []string
		for _, g := range got.Groups {
			for _, r := range g.Rules {
				names = append(names, g.Name+"/"+r.Name)
			}
		}
		if s := strings.Join(names, " "); s != c.want {
			t.Errorf("%s: %q, want %q", c.query, s, c.want)
		}
		if c.query == "group_limit=1" {
			var next apiRules
			e.promAPI("/prometheus/api/v1/rules?group_limit=1&group_next_token="+got.GroupNextToken, "team-a", &next)
			if len(next.Groups) != 1 || next.Groups[0].Name != "second" {
				t.Errorf("second page %+v", next)
			}
		}
	}
	var noAlerts apiRules
	e.promAPI("/prometheus/api/v1/rules?exclude_alerts=true&type=alert", "team-a", &noAlerts)
	if a := noAlerts.Groups[0].Rules[0].Alerts; a != nil {
		t.Errorf("exclude_alerts: alerts %v", a)
	}
	for _, bad := range []string{"type=bogus", "exclude_alerts=maybe", "group_limit=0", "group_next_token=x", "match[]=" + url.QueryEscape(`{a=""}`), "group_limit=1&group_next_token=nope"} {
		if code, body := e.do("GET", "/prometheus/api/v1/rules?"+bad, "team-a", ""); code != http.StatusBadRequest || !strings.Contains(body, `"errorType":"bad_data"`) {
			t.Errorf("%s: %d %s, want 400 bad_data", bad, code, body)
		}
	}
	var other apiRules
	e.promAPI("/prometheus/api/v1/rules", "team-c", &other)
	if len(other.Groups) != 0 {
		t.Errorf("a tenant without rules sees %+v", other)
	}
}

// seriesOf returns the metric families that have series labelled with the
// tenant.
func seriesOf(t *testing.T, e *env, tenant string) []string {
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == tenant {
					out = append(out, mf.GetName())
				}
			}
		}
	}
	return out
}
