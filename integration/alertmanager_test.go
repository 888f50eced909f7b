package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// rulerAlertGroup fires RulerAlert at once and for as long as it exists.
const rulerAlertGroup = `name: paging
interval: 1s
rules:
  - alert: RulerAlert
    expr: vector(1)
    labels: {source: ruler, severity: page}
`

// alertingE2E is the set of processes of TestAlertmanagerEndToEnd.
type alertingE2E struct {
	fp                     *fluxPulse
	smtp                   *smtpServer
	hook                   *webhook
	standalone             string
	tokA, tokB, tokNoAlert string
}

func startAlertingE2E(t *testing.T) *alertingE2E {
	e := &alertingE2E{smtp: startSMTP(t), hook: startWebhook(t)}
	tmplDir := t.TempDir()
	e.standalone = startStandaloneAlertmanager(t, alertingConfig(e.hook.URL, e.smtp.addr, "standalone", tmplDir), tmplDir)
	// The test's receivers are on loopback, which the firewall refuses by
	// default: allow it, as an operator allows an internal relay.
	e.fp = startFluxPulse(t, "-runtime-config.reload-period=100ms", "-ruler.min-evaluation-interval=1s",
		"-alertmanager.receivers-firewall-allow-cidr-networks=127.0.0.0/8")
	e.fp.cli(t, "tenant", "create", "-tenant", "a")
	e.fp.cli(t, "tenant", "create", "-tenant", "b")
	// The token without the alerts scope comes first: the runtime file is
	// rewritten whole, so the reload that makes a's and b's tokens work
	// (waited for below) holds it too.
	e.tokNoAlert, _ = e.fp.newToken(t, "-tenant", "a", "-scopes", "read,write,rules")
	e.tokA, _ = e.fp.newToken(t, "-tenant", "a", "-scopes", "alerts,rules")
	e.tokB, _ = e.fp.newToken(t, "-tenant", "b", "-scopes", "alerts,rules")
	for tenant, tok := range map[string]string{"a": e.tokA, "b": e.tokB} {
		body := userConfig(alertingConfig(e.hook.URL, e.smtp.addr, "fp-"+tenant, tmplDir))
		testbin.Eventually(t, 10*time.Second, func() error { // the runtime file is reloaded every 100ms
			if code, msg := amCall(t, http.MethodPost, e.fp.url()+"/api/v1/alerts", tok, "", body); code != http.StatusCreated {
				return fmt.Errorf("POST config of %s: %d %s", tenant, code, msg)
			}
			return nil
		})
		if code, msg := amCall(t, http.MethodPost, e.fp.url()+"/prometheus/config/v1/rules/paging", tok, "", rulerAlertGroup); code != http.StatusAccepted {
			t.Fatalf("POST rules of %s: %d %s", tenant, code, msg)
		}
	}
	return e
}

// TestAlertmanagerEndToEnd runs FluxPulse's multi-tenant Alertmanager with
// real parts: each tenant's ruler fires an alert that its own Alertmanager
// routes by label to a webhook and to e-mail on a real SMTP server; the
// same alerts posted to tenant a and to a stand-alone Alertmanager 0.35
// with the same configuration give the same notifications; amtool manages
// a's silences; b sees nothing of a; a restart keeps configurations,
// silences and the notification log (#16).
func TestAlertmanagerEndToEnd(t *testing.T) {
	e := startAlertingE2E(t)
	fp, hook, smtp := e.fp, e.hook, e.smtp
	t.Run("scope", func(t *testing.T) {
		for _, c := range []struct{ method, path, tok, org string }{
			{http.MethodGet, "/api/v1/alerts", e.tokNoAlert, ""},
			{http.MethodGet, "/alertmanager/api/v2/alerts", e.tokNoAlert, ""},
			{http.MethodPost, "/alertmanager/api/v2/silences", e.tokNoAlert, ""},
			{http.MethodGet, "/api/v1/alerts", e.tokB, "a"},
			{http.MethodGet, "/alertmanager/api/v2/silences", e.tokB, "a"},
		} {
			if code, msg := amCall(t, c.method, fp.url()+c.path, c.tok, c.org, ""); code != http.StatusForbidden {
				t.Errorf("%s %s: %d %s, want 403", c.method, c.path, code, msg)
			}
		}
	})
	t.Run("ruler alert routed to webhook and e-mail", func(t *testing.T) {
		testbin.Eventually(t, time.Minute, func() error {
			for _, tenant := range []string{"a", "b"} {
				if got := hook.summaries("/fp-" + tenant + "/oncall"); !slices.Equal(got, []string{"firing RulerAlert{}"}) {
					return fmt.Errorf("%s's webhook got %q", tenant, got)
				}
				if got := smtp.subjects(t, "fp-"+tenant+"-oncall@example.com"); !slices.Equal(got, []string{"[FIRING] RulerAlert (1)"}) {
					return fmt.Errorf("%s's mailbox got %q", tenant, got)
				}
			}
			return nil
		})
	})
	t.Run("grouping, repeat and resolution as Alertmanager 0.35", func(t *testing.T) { compareWithStandalone(t, e) })
	t.Run("amtool silences", func(t *testing.T) { checkAmtoolSilences(t, e) })
	t.Run("isolation", func(t *testing.T) {
		for _, path := range []string{"/api/v1/alerts", "/alertmanager/api/v2/alerts", "/alertmanager/api/v2/alerts/groups",
			"/alertmanager/api/v2/silences", "/alertmanager/api/v2/receivers", "/alertmanager/api/v2/status"} {
			code, body := amCall(t, http.MethodGet, fp.url()+path, e.tokB, "", "")
			if code != http.StatusOK || strings.Contains(body, "fp-a") || strings.Contains(body, "Cmp") || strings.Contains(body, "maintenance") {
				t.Errorf("GET %s as b: %d %.400s", path, code, body)
			}
		}
	})
	t.Run("restart keeps configuration, silences and notification log", func(t *testing.T) { checkAlertingRestart(t, e) })
}

// compareWithStandalone posts the same alerts at the same moments, as a
// ruler would (again every second, then resolved), to tenant a and to the
// stand-alone Alertmanager, and compares what each notified.
func compareWithStandalone(t *testing.T, e *alertingE2E) {
	post := func(resolved bool) {
		for _, b := range []string{alertsBody("Cmp", map[string]string{"severity": "page"}, resolved, "i1", "i2"), alertsBody("Other", nil, resolved, "i3")} {
			if code, msg := amCall(t, http.MethodPost, e.fp.url()+"/alertmanager/api/v2/alerts", e.tokA, "", b); code != http.StatusOK {
				t.Fatalf("post to FluxPulse: %d %s", code, msg)
			}
			if code, msg := amCall(t, http.MethodPost, e.standalone+"/api/v2/alerts", "", "", b); code != http.StatusOK {
				t.Fatalf("post to Alertmanager: %d %s", code, msg)
			}
		}
	}
	// group_wait 1s, group_interval 2s, repeat_interval 4s: flushes at
	// 1, 3, 5, 7 and 9 s; notified at 1; repeated at the first flush that
	// finds the logged notification 4s old (7 s: at 5 s the log entry,
	// written once the first notification was sent, is a few
	// milliseconds short of it); resolved at 7.5 s, notified at 9.
	start := time.Now()
	post(false)
	tick, resolve := time.NewTicker(time.Second), time.NewTimer(7500*time.Millisecond)
	defer tick.Stop()
firing:
	for {
		select {
		case <-tick.C:
			post(false)
		case <-resolve.C:
			break firing
		}
	}
	post(true)
	paths := []string{"pager", "default"}
	testbin.Eventually(t, time.Minute, func() error {
		for _, side := range []string{"fp-a", "standalone"} {
			for _, p := range paths {
				if got := e.hook.summaries("/" + side + "/" + p); len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "resolved") {
					return fmt.Errorf("%s %s: %q", side, p, got)
				}
			}
			if got := e.smtp.subjects(t, side+"-pager@example.com"); len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "[RESOLVED]") {
				return fmt.Errorf("%s pager mail: %q", side, got)
			}
		}
		return nil
	})
	for _, p := range paths {
		fpGot, saGot := e.hook.summaries("/fp-a/"+p), e.hook.summaries("/standalone/"+p)
		if !slices.Equal(fpGot, saGot) {
			t.Errorf("%s: FluxPulse notified %q, Alertmanager 0.35 %q", p, fpGot, saGot)
		}
		if len(fpGot) < 3 {
			t.Errorf("%s: %q: want a first notification, at least one repeat and the resolution", p, fpGot)
		}
		t.Logf("%s: FluxPulse %s", p, offsets(start, e.hook.got("/fp-a/"+p)))
		t.Logf("%s: Alertmanager 0.35 %s", p, offsets(start, e.hook.got("/standalone/"+p)))
	}
	if fpMail, saMail := e.smtp.subjects(t, "fp-a-pager@example.com"), e.smtp.subjects(t, "standalone-pager@example.com"); !slices.Equal(fpMail, saMail) {
		t.Errorf("e-mail: FluxPulse sent %q, Alertmanager 0.35 %q", fpMail, saMail)
	} else {
		t.Logf("e-mail subjects (both): %q", fpMail)
	}
}

// offsets renders notifications as "status@seconds after start".
func offsets(start time.Time, ms []amNotification) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s@%.2fs", m.Status, m.at.Sub(start).Seconds()))
	}
	return strings.Join(out, " ")
}

// alertState returns the state of tenant's alert named name, and the
// silences muting it, through the API v2.
func alertState(t *testing.T, e *alertingE2E, tok, name string) string {
	t.Helper()
	code, body := amCall(t, http.MethodGet, e.fp.url()+`/alertmanager/api/v2/alerts?filter=alertname="`+name+`"`, tok, "", "")
	var alerts []struct {
		Status struct {
			State      string   `json:"state"`
			SilencedBy []string `json:"silencedBy"`
		} `json:"status"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &alerts) != nil || len(alerts) != 1 {
		t.Fatalf("alerts: %d %s", code, body)
	}
	return alerts[0].Status.State + " " + strings.Join(alerts[0].Status.SilencedBy, ",")
}

// checkAmtoolSilences creates, lists and expires a silence of tenant a
// with amtool: it mutes a's RulerAlert, not b's identical one.
func checkAmtoolSilences(t *testing.T, e *alertingE2E) {
	urlA := "http://a:" + e.tokA + "@" + e.fp.addr + "/alertmanager"
	urlB := "http://b:" + e.tokB + "@" + e.fp.addr + "/alertmanager"
	id := amtool(t, urlA, "silence", "add", "alertname=RulerAlert", "--duration=1h", "--comment=maintenance", "--author=ops")
	if q := amtool(t, urlA, "silence", "query", "-q"); q != id {
		t.Errorf("amtool silence query as a: %q, want %q", q, id)
	}
	if q := amtool(t, urlB, "silence", "query", "-q"); q != "" {
		t.Errorf("amtool silence query as b: %q, want nothing", q)
	}
	if got := alertState(t, e, e.tokA, "RulerAlert"); got != "suppressed "+id {
		t.Errorf("a's RulerAlert: %q, want suppressed by %s", got, id)
	}
	if got := alertState(t, e, e.tokB, "RulerAlert"); got != "active " {
		t.Errorf("b's RulerAlert: %q, want active", got)
	}
	if out := amtool(t, urlA, "alert", "query", "alertname=RulerAlert"); strings.Contains(out, "RulerAlert") {
		t.Errorf("amtool alert query as a shows the silenced alert:\n%s", out)
	}
	amtool(t, urlA, "silence", "expire", id)
	if q := amtool(t, urlA, "silence", "query", "-q"); q != "" {
		t.Errorf("a's silences after expiring: %q", q)
	}
	if got := alertState(t, e, e.tokA, "RulerAlert"); got != "active " {
		t.Errorf("a's RulerAlert after the silence expired: %q, want active", got)
	}
}

// checkAlertingRestart restarts FluxPulse: the configuration and a silence
// are still there, and the firing RulerAlert (repeat_interval 1h) is not
// notified again. The secrets appear in no answer, log or audit entry.
func checkAlertingRestart(t *testing.T, e *alertingE2E) {
	fp, urlA := e.fp, "http://a:"+e.tokA+"@"+e.fp.addr+"/alertmanager"
	sid := amtool(t, urlA, "silence", "add", "alertname=Never", "--duration=2h", "--comment=kept", "--author=ops")
	_, cfgBefore := amCall(t, http.MethodGet, fp.url()+"/api/v1/alerts", e.tokA, "", "")
	hooks, mails := len(e.hook.got("/fp-a/oncall")), len(e.smtp.subjects(t, "fp-a-oncall@example.com"))
	if err := fp.proc.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	audit := fp.cli(t, "audit", "show")
	for _, want := range []string{"alertmanager.config.change", "alertmanager.silence.create", "alertmanager.silence.expire", sid} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
	for _, secret := range []string{"smtp-password-secret", "webhook-token-secret"} {
		if strings.Contains(cfgBefore, secret) || strings.Contains(audit, secret) || fp.proc.Contains(secret) {
			t.Errorf("%q shown by GET, the audit log or the server log", secret)
		}
	}
	fp.start()
	if _, cfg := amCall(t, http.MethodGet, fp.url()+"/api/v1/alerts", e.tokA, "", ""); cfg != cfgBefore {
		t.Errorf("configuration after the restart:\n%s\nbefore:\n%s", cfg, cfgBefore)
	}
	if q := amtool(t, urlA, "silence", "query", "-q"); q != sid {
		t.Errorf("silences after the restart: %q, want %q", q, sid)
	}
	// The ruler sends RulerAlert again; its group flushes at once (after
	// group_wait) and every 2s, each flush asking the notification log for
	// the oncall receiver's two integrations.
	testbin.Eventually(t, time.Minute, func() error {
		if n := metricSum(t, fp.internalURL()+"/metrics", "fluxpulse_alertmanager_nflog_queries_total", map[string]string{"tenant": "a"}); n < 6 {
			return fmt.Errorf("%v notification-log queries", n)
		}
		return nil
	})
	if n, m := len(e.hook.got("/fp-a/oncall")), len(e.smtp.subjects(t, "fp-a-oncall@example.com")); n != hooks || m != mails {
		t.Errorf("after the restart: %d webhook calls and %d e-mails, before %d and %d (repeat_interval is 1h)", n, m, hooks, mails)
	}
}

// TestAlertmanagerFirewall: with the default flags, webhooks to
// 127.0.0.1, to 169.254.169.254 and to a name resolving to loopback are
// refused when they connect, and the metric and the log say so (#16).
func TestAlertmanagerFirewall(t *testing.T) {
	hook := startWebhook(t)
	fp := startFluxPulse(t, "-auth.mode=header")
	port := hook.URL[strings.LastIndexByte(hook.URL, ':')+1:]
	cfg := fmt.Sprintf(`route: {receiver: probe, group_wait: 0s}
receivers:
  - name: probe
    webhook_configs:
      - url: %s/loopback
      - url: http://169.254.169.254/latest/meta-data/
      - url: http://localhost:%s/by-name
`, hook.URL, port)
	if code, msg := amCall(t, http.MethodPost, fp.url()+"/api/v1/alerts", "", "a", userConfig(cfg)); code != http.StatusCreated {
		t.Fatalf("POST config: %d %s", code, msg)
	}
	if code, msg := amCall(t, http.MethodPost, fp.url()+"/alertmanager/api/v2/alerts", "", "a", alertsBody("Probe", nil, false, "x")); code != http.StatusOK {
		t.Fatalf("POST alerts: %d %s", code, msg)
	}
	metrics := fp.internalURL() + "/metrics"
	testbin.Eventually(t, time.Minute, func() error {
		if n := metricSum(t, metrics, "fluxpulse_alertmanager_notifications_blocked_total", map[string]string{"tenant": "a", "integration": "webhook"}); n != 3 {
			return fmt.Errorf("%v webhooks blocked", n)
		}
		return nil
	})
	if n := metricSum(t, metrics, "fluxpulse_alertmanager_notifications_failed_total", map[string]string{"tenant": "a", "reason": "configError"}); n != 3 {
		t.Errorf("%v notifications failed with reason configError, want 3", n)
	}
	for _, want := range []string{"127.0.0.1 is a loopback address", "169.254.169.254 is a link-local", "receivers firewall"} {
		if !fp.proc.Contains(want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if got := hook.summaries("/loopback"); len(got) > 0 {
		t.Errorf("the webhook on loopback was reached: %q", got)
	}
	if got := hook.summaries("/by-name"); len(got) > 0 {
		t.Errorf("the webhook by name was reached: %q", got)
	}
}

// TestAlertmanagerRolesApart: a ruler running apart sends its tenant's
// alerts to the alertmanager process over its internal route with the
// cluster secret; the route refuses callers without it (#16).
func TestAlertmanagerRolesApart(t *testing.T) {
	hook := startWebhook(t)
	c := startCluster(t, options{ingesters: 1, distributors: 1, queriers: 1, alerting: true,
		args: []string{"-ingester.ring.replication-factor=1", "-ruler.min-evaluation-interval=1s", "-alertmanager.receivers-firewall-allow-cidr-networks=127.0.0.0/8"}})
	cfg := fmt.Sprintf("route: {receiver: hook, group_wait: 0s}\nreceivers: [{name: hook, webhook_configs: [{url: %q}]}]\n", hook.URL+"/apart")
	if code, msg := amCall(t, http.MethodPost, c.am.url()+"/api/v1/alerts", "", "team-a", userConfig(cfg)); code != http.StatusCreated {
		t.Fatalf("POST config: %d %s", code, msg)
	}
	if code, msg := amCall(t, http.MethodPost, c.ruler.url()+"/prometheus/config/v1/rules/paging", "", "team-a", rulerAlertGroup); code != http.StatusAccepted {
		t.Fatalf("POST rules: %d %s", code, msg)
	}
	testbin.Eventually(t, 2*time.Minute, func() error {
		if got := hook.summaries("/apart"); len(got) == 0 || got[0] != "firing RulerAlert{}" {
			return fmt.Errorf("webhook got %q", got)
		}
		return nil
	})
	body := alertsBody("Forged", nil, false, "x")
	for name, tok := range map[string]string{"no credential": "", "a wrong secret": "not-the-cluster-secret"} {
		if code, _ := amCall(t, http.MethodPost, c.am.url()+"/internal/alertmanager/api/v2/alerts", tok, "team-a", body); code != http.StatusUnauthorized {
			t.Errorf("internal route with %s: %d, want 401", name, code)
		}
	}
}
