package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// The rule groups of the end-to-end ruler test, posted to both tenants
// under the same names, and loaded into the Prometheus that scrapes the
// targets (for comparing the rules API).
const (
	availabilityGroup = `name: availability
interval: 1s
rules:
  - alert: TargetDown
    expr: up{job="svc"} == 0
    for: 2s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} of team {{ $labels.team }} is down"
      description: "up is {{ $value }}"
`
	recordingGroup = `name: recording
interval: 1s
query_offset: 8s
rules:
  - record: team:svc_requests:sum
    expr: sum by (team) (svc_requests_total)
`
)

// svcTarget is a scrape target whose address survives a restart.
type svcTarget struct {
	addr string
	reg  *prometheus.Registry
	srv  *http.Server
	done chan struct{}
}

// startSvcTarget serves two svc_requests_total series that grow at
// different rates, on addr ("" for a new port).
func startSvcTarget(t *testing.T, addr string, reg *prometheus.Registry) *svcTarget {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
		reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "svc_requests_total", Help: "Requests."}, []string{"path"})
		reg.MustRegister(reqs)
		tick := time.NewTicker(100 * time.Millisecond)
		t.Cleanup(tick.Stop)
		go func() {
			for range tick.C {
				reqs.WithLabelValues("/a").Add(1)
				reqs.WithLabelValues("/b").Add(3)
			}
		}()
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	testbin.Eventually(t, 10*time.Second, func() error { // the old socket may linger briefly
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	st := &svcTarget{addr: ln.Addr().String(), reg: reg, done: make(chan struct{}),
		srv: &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		defer close(st.done)
		_ = st.srv.Serve(ln)
	}()
	t.Cleanup(st.stop)
	return st
}

func (st *svcTarget) stop() {
	_ = st.srv.Close()
	<-st.done
}

// webhook is the receiver of the Alertmanagers: it records each
// notification by path.
type webhook struct {
	*httptest.Server
	mu   sync.Mutex
	msgs map[string][]amNotification
}

type amNotification struct {
	at     time.Time // when it arrived
	Status string    `json:"status"`
	Alerts []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
	} `json:"alerts"`
}

func startWebhook(t *testing.T) *webhook {
	wh := &webhook{msgs: map[string][]amNotification{}}
	wh.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n amNotification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.at = time.Now()
		wh.mu.Lock()
		wh.msgs[r.URL.Path] = append(wh.msgs[r.URL.Path], n)
		wh.mu.Unlock()
	}))
	t.Cleanup(wh.Close)
	return wh
}

// received returns the alerts of every notification to path, as
// "status labels annotations generatorURL" lines.
func (wh *webhook) received(path string) []string {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	var out []string
	for _, n := range wh.msgs[path] {
		for _, a := range n.Alerts {
			out = append(out, fmt.Sprintf("%s %v %v %s", a.Status, a.Labels, a.Annotations, a.GeneratorURL))
		}
	}
	return out
}

// amProxy sits in front of an Alertmanager (or answers 200 itself when it
// has none) and records the X-Scope-OrgID of every alert post: the header
// is on the ruler → Alertmanager hop, which the webhook cannot see.
type amProxy struct {
	*httptest.Server
	mu     sync.Mutex
	orgIDs []string
}

func startAMProxy(t *testing.T, target string) *amProxy {
	p := &amProxy{}
	var next http.Handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if target != "" {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		next = httputil.NewSingleHostReverseProxy(u)
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v2/alerts" {
			p.mu.Lock()
			p.orgIDs = append(p.orgIDs, r.Header.Get("X-Scope-OrgID"))
			p.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *amProxy) tenants() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.orgIDs)
	slices.Sort(out)
	return slices.Compact(out)
}

// startAlertmanager runs a real Alertmanager that sends everything to
// hookURL at once, resolved notifications included.
func startAlertmanager(t *testing.T, hookURL string) string {
	t.Helper()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, hookURL)
	return runAlertmanager(t, cfg)
}

// postRules stores a rule group through the Mimir path, as mimirtool does.
func postRules(t *testing.T, base, tenant, namespace, group string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/prometheus/config/v1/rules/"+url.PathEscape(namespace), strings.NewReader(group))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST rules for %s: %s", tenant, resp.Status)
	}
}

// rulerE2E is the set of processes of TestRulerAlertsThroughAlertmanager.
type rulerE2E struct {
	wh                     *webhook
	proxyA, proxyB, global *amProxy
	fp                     *fluxPulse
	teams                  map[string]*svcTarget
	prom                   *prometheusProc
}

func startRulerE2E(t *testing.T) *rulerE2E {
	wh := startWebhook(t)
	proxyA := startAMProxy(t, startAlertmanager(t, wh.URL+"/a"))
	proxyB := startAMProxy(t, startAlertmanager(t, wh.URL+"/b"))
	global := startAMProxy(t, "") // every tenant overrides it: must stay silent
	runtime := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(runtime, fmt.Appendf(nil, `tenants:
  team-a: {limits: {ruler_alertmanager_url: %q}}
  team-b: {limits: {ruler_alertmanager_url: %q}}
`, proxyA.URL, proxyB.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	fp := startFluxPulse(t, "-auth.mode=header", "-runtime-config.file="+runtime, "-ruler.min-evaluation-interval=1s",
		"-ruler.alertmanager-url="+global.URL, "-ruler.external-url=http://grafana.example/fp", "-ruler.external-labels=cluster=e2e",
		"-ruler.resend-delay=2s")
	teams := map[string]*svcTarget{"a": startSvcTarget(t, "", nil), "b": startSvcTarget(t, "", nil)}
	for _, tenant := range []string{"team-a", "team-b"} {
		postRules(t, fp.url(), tenant, "svc", availabilityGroup)
		postRules(t, fp.url(), tenant, "svc", recordingGroup)
	}
	rulesFile := filepath.Join(t.TempDir(), "rules.yml")
	file := "groups:\n  - " + strings.ReplaceAll(strings.TrimSpace(availabilityGroup), "\n", "\n    ") + "\n  - " + strings.ReplaceAll(strings.TrimSpace(recordingGroup), "\n", "\n    ") + "\n"
	if err := os.WriteFile(rulesFile, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, func(self string) string {
		return rulerPromConfig(rulesFile, teams["a"].addr, teams["b"].addr, fp.url())
	}, "")

	return &rulerE2E{wh: wh, proxyA: proxyA, proxyB: proxyB, global: global, fp: fp, teams: teams, prom: prom}
}

// TestRulerAlertsThroughAlertmanager runs the whole alerting path with real
// processes: Prometheus scrapes two teams' targets and remote-writes each
// team to its own tenant; both tenants have the same rule groups; each
// tenant's alerts go to its own Alertmanager (per-tenant URL in the runtime
// file) behind a proxy that records X-Scope-OrgID, and on to a webhook.
func TestRulerAlertsThroughAlertmanager(t *testing.T) {
	e := startRulerE2E(t)
	wh, proxyA, proxyB, global, teams := e.wh, e.proxyA, e.proxyB, e.global, e.teams
	fpAPI := e.fp.url() + "/prometheus"

	// Both rulers have evaluated, and five recorded samples exist.
	testbin.Eventually(t, time.Minute, func() error {
		for _, tenant := range []string{"team-a", "team-b"} {
			n := 0
			for _, ss := range rangeSamples(t, fpAPI, `team:svc_requests:sum[1m]`, time.Now(), tenant) {
				n += len(ss)
			}
			if n < 5 {
				return fmt.Errorf("%s: %d recorded samples", tenant, n)
			}
		}
		return compareRulesAPI(t, fpAPI, e.prom.url)
	})

	stopA := time.Now()
	teams["a"].stop()
	summaryA := fmt.Sprintf("%s of team a is down", teams["a"].addr)
	testbin.Eventually(t, time.Minute, func() error {
		return expectAlert(wh.received("/a"), "firing", summaryA)
	})
	t.Run("firing alert", func(t *testing.T) {
		got := wh.received("/a")[0]
		for _, want := range []string{"alertname:TargetDown", "cluster:e2e", "severity:page", "team:a", "job:svc", "instance:" + teams["a"].addr,
			"description:up is 0", "http://grafana.example/fp/graph?g0.expr="} {
			if !strings.Contains(got, want) {
				t.Errorf("notification %q lacks %q", got, want)
			}
		}
		if ids := proxyA.tenants(); !reflect.DeepEqual(ids, []string{"team-a"}) {
			t.Errorf("team-a's Alertmanager got alerts with X-Scope-OrgID %q", ids)
		}
		for tenant, want := range map[string]string{"team-a": "firing", "team-b": "inactive"} {
			groups := apiData(t, fpAPI, "/api/v1/rules", url.Values{"type": {"alert"}}, tenant).(map[string]any)["groups"].([]any)
			if st := groups[0].(map[string]any)["rules"].([]any)[0].(map[string]any)["state"]; st != want {
				t.Errorf("%s: TargetDown is %v, want %s", tenant, st, want)
			}
		}
		checkTenantAlerts(t, fpAPI, "team-a", []string{"firing " + teams["a"].addr})
		checkTenantAlerts(t, fpAPI, "team-b", nil)
		if res := instant(t, fpAPI, `ALERTS{alertstate="firing"}`, time.Now(), "team-b"); len(res) != 0 {
			t.Errorf("team-b has ALERTS series %v", res)
		}
		if res := instant(t, fpAPI, `ALERTS_FOR_STATE{alertname="TargetDown"}`, time.Now(), "team-a"); len(res) != 1 {
			t.Errorf("team-a: ALERTS_FOR_STATE %v", res)
		}
	})

	teams["a"] = startSvcTarget(t, teams["a"].addr, teams["a"].reg)
	testbin.Eventually(t, time.Minute, func() error {
		return expectAlert(wh.received("/a"), "resolved", summaryA)
	})

	teams["b"].stop()
	summaryB := fmt.Sprintf("%s of team b is down", teams["b"].addr)
	testbin.Eventually(t, time.Minute, func() error {
		return expectAlert(wh.received("/b"), "firing", summaryB)
	})
	t.Run("isolation", func(t *testing.T) {
		for path, other := range map[string]string{"/a": "team:b", "/b": "team:a"} {
			for _, n := range wh.received(path) {
				if strings.Contains(n, other) {
					t.Errorf("webhook %s got another team's alert: %s", path, n)
				}
			}
		}
		if ids := proxyB.tenants(); !reflect.DeepEqual(ids, []string{"team-b"}) {
			t.Errorf("team-b's Alertmanager got alerts with X-Scope-OrgID %q", ids)
		}
		if ids := global.tenants(); len(ids) != 0 {
			t.Errorf("the global Alertmanager got alerts from %q", ids)
		}
	})
	t.Run("recording rule", func(t *testing.T) { checkRecording(t, fpAPI, "team-a", stopA) })
}

func rulerPromConfig(rules, targetA, targetB, fp string) string {
	rw := func(tenant, team string) string {
		return fmt.Sprintf(`  - url: %s/api/v1/push
    headers: {X-Scope-OrgID: %s}
    queue_config: {batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}
    write_relabel_configs:
      - {source_labels: [team], regex: %s, action: keep}
      - {source_labels: [__name__], regex: 'ALERTS|ALERTS_FOR_STATE|team:.*', action: drop}
`, fp, tenant, team)
	}
	return fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%s]
scrape_configs:
  - job_name: svc
    static_configs:
      - {targets: ["%s"], labels: {team: a}}
      - {targets: ["%s"], labels: {team: b}}
remote_write:
%s%s`, rules, targetA, targetB, rw("team-a", "a"), rw("team-b", "b"))
}

// expectAlert finds a notification of the given status whose summary is
// summary.
func expectAlert(got []string, status, summary string) error {
	for _, n := range got {
		if strings.HasPrefix(n, status+" ") && strings.Contains(n, "summary:"+summary) {
			return nil
		}
	}
	return fmt.Errorf("no %s notification with summary %q among %q", status, summary, got)
}

// checkTenantAlerts compares a tenant's /api/v1/alerts with "state
// instance" lines.
func checkTenantAlerts(t *testing.T, base, tenant string, want []string) {
	t.Helper()
	d := apiData(t, base, "/api/v1/alerts", nil, tenant).(map[string]any)
	var got []string
	for _, a := range d["alerts"].([]any) {
		a := a.(map[string]any)
		got = append(got, fmt.Sprintf("%s %s", a["state"], a["labels"].(map[string]any)["instance"]))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s alerts %q, want %q", tenant, got, want)
	}
}

// compareRulesAPI checks that FluxPulse's /api/v1/rules has the shape of
// Prometheus's for the same rules, and the same rule definitions.
func compareRulesAPI(t *testing.T, fpBase, promBase string) error {
	var fpGroups, promGroups []any
	for _, tenant := range []string{"team-a", "team-b"} {
		fpGroups = apiData(t, fpBase, "/api/v1/rules", nil, tenant).(map[string]any)["groups"].([]any)
		if len(fpGroups) != 2 {
			return fmt.Errorf("%s has %d groups", tenant, len(fpGroups))
		}
	}
	promGroups = apiData(t, promBase, "/api/v1/rules", nil, "").(map[string]any)["groups"].([]any)
	if len(promGroups) != 2 {
		return fmt.Errorf("Prometheus has %d groups", len(promGroups))
	}
	for k := range fpGroups {
		fg, pg := fpGroups[k].(map[string]any), promGroups[k].(map[string]any)
		if diffs := shapeDiff("groups", fg, pg); len(diffs) > 0 {
			return fmt.Errorf("FluxPulse and Prometheus differ in shape: %v", diffs)
		}
		if fg["file"] != "svc" {
			return fmt.Errorf("group %v: file %v, want the namespace", fg["name"], fg["file"])
		}
		for _, f := range []string{"name", "interval", "limit"} {
			if fg[f] != pg[f] {
				return fmt.Errorf("group %v: %s %v, Prometheus %v", fg["name"], f, fg[f], pg[f])
			}
		}
		for i, fr := range fg["rules"].([]any) {
			fr, pr := fr.(map[string]any), pg["rules"].([]any)[i].(map[string]any)
			for _, f := range []string{"name", "query", "duration", "keepFiringFor", "labels", "annotations", "health", "type", "state"} {
				if !reflect.DeepEqual(fr[f], pr[f]) {
					return fmt.Errorf("rule %v: %s %v, Prometheus %v", fr["name"], f, fr[f], pr[f])
				}
			}
		}
	}
	return nil
}

// shapeDiff lists where a and b differ in keys or value kinds (arrays are
// compared by their first elements).
func shapeDiff(path string, a, b any) []string {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok {
			return []string{path + ": object vs " + fmt.Sprintf("%T", b)}
		}
		var out []string
		for k := range a {
			if _, ok := b[k]; !ok {
				out = append(out, path+"."+k+" only in FluxPulse")
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				out = append(out, path+"."+k+" only in Prometheus")
				continue
			}
			out = append(out, shapeDiff(path+"."+k, a[k], b[k])...)
		}
		sort.Strings(out)
		return out
	case []any:
		b, ok := b.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: array vs %T", path, b)}
		}
		if len(a) > 0 && len(b) > 0 {
			return shapeDiff(path+"[0]", a[0], b[0])
		}
		return nil
	}
	if fmt.Sprintf("%T", a) != fmt.Sprintf("%T", b) {
		return []string{fmt.Sprintf("%s: %T vs %T", path, a, b)}
	}
	return nil
}

type sample struct {
	t int64 // ms
	v float64
}

// rangeSamples runs an instant query with a range selector and returns the
// raw samples of every series by label set.
func rangeSamples(t *testing.T, base, q string, at time.Time, tenant string) map[string][]sample {
	t.Helper()
	out := map[string][]sample{}
	for _, r := range instant(t, base, q, at, tenant) {
		r := r.(map[string]any)
		b, _ := json.Marshal(r["metric"])
		for _, p := range r["values"].([]any) {
			p := p.([]any)
			v, err := strconv.ParseFloat(p[1].(string), 64)
			if err != nil {
				t.Fatal(err)
			}
			out[string(b)] = append(out[string(b)], sample{int64(math.Round(p[0].(float64) * 1000)), v})
		}
	}
	return out
}

// checkRecording recomputes every sample of team:svc_requests:sum written
// before the target went away from the raw series: the sum of the newest
// raw sample at or before the sample's time (within the lookback delta).
func checkRecording(t *testing.T, base, tenant string, before time.Time) {
	recorded := rangeSamples(t, base, `team:svc_requests:sum[5m]`, before, tenant)
	raw := rangeSamples(t, base, `svc_requests_total{job="svc"}[10m]`, before, tenant)
	if len(recorded) != 1 || len(raw) != 2 {
		t.Fatalf("%d recorded and %d raw series, want 1 and 2", len(recorded), len(raw))
	}
	checked := 0
	for _, ss := range recorded {
		for _, s := range ss {
			if s.t > before.Add(-2*time.Second).UnixMilli() {
				continue
			}
			var want float64
			for _, rs := range raw {
				k := sort.Search(len(rs), func(i int) bool { return rs[i].t > s.t }) - 1
				if k >= 0 && s.t-rs[k].t <= (5*time.Minute).Milliseconds() {
					want += rs[k].v
				}
			}
			if want != s.v {
				t.Errorf("recorded %v at %s, the raw series give %v", s.v, time.UnixMilli(s.t).Format(time.StampMilli), want)
			}
			checked++
		}
	}
	if checked < 3 {
		t.Errorf("only %d recorded samples checked", checked)
	}
}

// TestRulerRestartKeepsForState restarts FluxPulse while one alert is
// pending (for: 1h) and another firing: the pending one stays pending and
// keeps the time it had spent pending (Prometheus moves its activeAt by the
// outage rather than resetting it to the restart), the firing one keeps
// its activeAt.
func TestRulerRestartKeepsForState(t *testing.T) {
	fp := startFluxPulse(t, "-auth.mode=header", "-ruler.min-evaluation-interval=1s")
	postRules(t, fp.url(), "team-a", "restart", `name: restart
interval: 1s
rules:
  - alert: LongPending
    expr: absent(fp_never_written)
    for: 1h
  - alert: Firing
    expr: absent(fp_never_written_either)
    for: 1s
`)
	base := fp.url() + "/prometheus"
	var before map[string]rulerAlert
	testbin.Eventually(t, time.Minute, func() error {
		before = alertsOf(t, base, "team-a")
		if before["LongPending"].State != "pending" || before["Firing"].State != "firing" {
			return fmt.Errorf("alerts %+v", before)
		}
		if len(instant(t, base, `ALERTS_FOR_STATE`, time.Now(), "team-a")) != 2 {
			return fmt.Errorf("no ALERTS_FOR_STATE yet")
		}
		// Pending for more than the second of resolution of ALERTS_FOR_STATE.
		if d := time.Since(before["LongPending"].ActiveAt); d < 3*time.Second {
			return fmt.Errorf("pending for %s only", d)
		}
		return nil
	})
	if err := fp.proc.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	fp.start()

	var after map[string]rulerAlert
	testbin.Eventually(t, time.Minute, func() error {
		after = alertsOf(t, base, "team-a")
		for _, name := range []string{"LongPending", "Firing"} {
			if a := after[name].ActiveAt; a.IsZero() || !a.Before(restart) {
				return fmt.Errorf("%s not restored yet: %+v", name, after[name])
			}
		}
		return nil
	})
	observed := time.Now()
	if s := after["LongPending"].State; s != "pending" {
		t.Errorf("LongPending is %s after the restart, want pending", s)
	}
	if a, b := after["Firing"], before["Firing"]; a.State != "firing" || !a.ActiveAt.Equal(b.ActiveAt.Truncate(time.Second)) {
		t.Errorf("Firing after the restart: %s since %s, want firing since %s", a.State, a.ActiveAt, b.ActiveAt.Truncate(time.Second))
	}
	// The last ALERTS_FOR_STATE sample before the restart: when the first
	// process last saw the alert, and its activeAt in seconds.
	forState := rangeSamples(t, base, `ALERTS_FOR_STATE{alertname="LongPending"}[10m]`, restart, "team-a")
	var last sample
	for _, ss := range forState {
		last = ss[len(ss)-1]
	}
	orig := time.Unix(int64(last.v), 0)
	if want := before["LongPending"].ActiveAt.Truncate(time.Second); !orig.Equal(want) {
		t.Fatalf("ALERTS_FOR_STATE holds %s, the alert was active since %s", orig, want)
	}
	down := time.UnixMilli(last.t).Truncate(time.Second)
	lo, hi := orig.Add(restart.Sub(down)), orig.Add(observed.Sub(down))
	if got := after["LongPending"].ActiveAt; got.Before(lo.Truncate(time.Second)) || got.After(hi) {
		t.Errorf("LongPending active since %s after the restart, want the original %s moved by the outage: within [%s, %s]",
			got, before["LongPending"].ActiveAt, lo, hi)
	}
}

type rulerAlert struct {
	State    string
	ActiveAt time.Time
}

func alertsOf(t *testing.T, base, tenant string) map[string]rulerAlert {
	t.Helper()
	status, body := api(t, base, "/api/v1/alerts", nil, tenant)
	var r struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string
				State    string
				ActiveAt time.Time
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || status != http.StatusOK {
		t.Fatalf("alerts: %d %s", status, bytes.TrimSpace(body))
	}
	out := map[string]rulerAlert{}
	for _, a := range r.Data.Alerts {
		out[a.Labels["alertname"]] = rulerAlert{a.State, a.ActiveAt}
	}
	return out
}
