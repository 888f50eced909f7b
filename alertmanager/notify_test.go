package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/config"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// silenceBody is a silence for alertname=name, for an hour.
func silenceBody(name string) string {
	return fmt.Sprintf(`{"matchers":[{"name":"alertname","value":%q,"isRegex":false,"isEqual":true}],"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"maintenance"}`,
		name, time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
}

// createSilence creates a silence through the API and returns its ID.
func (e *env) createSilence(tenant, name string) string {
	e.t.Helper()
	code, body := e.do(http.MethodPost, "/alertmanager/api/v2/silences", tenant, silenceBody(name))
	var r struct {
		SilenceID string `json:"silenceID"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || r.SilenceID == "" {
		e.t.Fatalf("create silence: %d %s", code, body)
	}
	return r.SilenceID
}

// TestRoutingSilencesAndIsolation: two tenants with the same
// configuration; each one's alerts are routed by label to its own
// receivers, a silence of one mutes only its own alert, and no endpoint
// shows one tenant anything of the other (#16).
func TestRoutingSilencesAndIsolation(t *testing.T) {
	rc := startReceiver(t)
	e := newEnv(t, testConfig(t), "")
	for _, tenant := range []string{"a", "b"} {
		e.setConfig(tenant, hookConfig(rc.URL, tenant, ""))
	}
	sid := e.createSilence("a", "Muted")
	for _, tenant := range []string{"a", "b"} {
		e.postAlerts(tenant, false, map[string]string{"alertname": "Down", "severity": "page"},
			map[string]string{"alertname": "Slow"}, map[string]string{"alertname": "Muted"})
	}
	testbin.Eventually(t, 10*time.Second, func() error {
		for _, tenant := range []string{"a", "b"} {
			if n := rc.got("/" + tenant + "/pager"); len(n) != 1 || n[0].summary() != "firing Down" {
				return fmt.Errorf("%s pager: %v", tenant, n)
			}
		}
		if n := rc.got("/b/default"); len(n) != 2 {
			return fmt.Errorf("b default: %v", n)
		}
		if n := rc.got("/a/default"); len(n) != 1 || n[0].summary() != "firing Slow" {
			return fmt.Errorf("a default: %v (Muted is silenced)", n)
		}
		return nil
	})
	t.Run("b sees nothing of a", func(t *testing.T) {
		for _, path := range []string{"/alertmanager/api/v2/alerts", "/alertmanager/api/v2/alerts/groups", "/alertmanager/api/v2/silences",
			"/alertmanager/api/v2/receivers", "/alertmanager/api/v2/status", "/api/v1/alerts"} {
			code, body := e.do(http.MethodGet, path, "b", "")
			if code != http.StatusOK || strings.Contains(body, "/a/") || strings.Contains(body, sid) || strings.Contains(body, "maintenance") {
				t.Errorf("GET %s as b: %d %.300s", path, code, body)
			}
		}
		if code, _ := e.do(http.MethodGet, "/alertmanager/api/v2/silence/"+sid, "b", ""); code != http.StatusNotFound {
			t.Errorf("b reads a's silence: %d", code)
		}
		if code, _ := e.do(http.MethodDelete, "/alertmanager/api/v2/silence/"+sid, "b", ""); code != http.StatusNotFound {
			t.Errorf("b expires a's silence: %d", code)
		}
		if code, body := e.do(http.MethodGet, "/alertmanager/api/v2/silences", "a", ""); !strings.Contains(body, `"state":"active"`) {
			t.Errorf("a's silence after b's attempt: %d %s", code, body)
		}
	})
	t.Run("resolved", func(t *testing.T) {
		e.postAlerts("a", true, map[string]string{"alertname": "Down", "severity": "page"})
		testbin.Eventually(t, 10*time.Second, func() error {
			if n := rc.got("/a/pager"); len(n) != 2 || n[1].summary() != "resolved Down" {
				return fmt.Errorf("a pager: %v", n)
			}
			return nil
		})
	})
	t.Run("silence expired and audited", func(t *testing.T) {
		if code, body := e.do(http.MethodDelete, "/alertmanager/api/v2/silence/"+sid, "a", ""); code != http.StatusOK {
			t.Fatalf("expire: %d %s", code, body)
		}
		var got []string
		for _, en := range e.audit.Entries() {
			if strings.HasPrefix(en.Action, "alertmanager.silence.") {
				got = append(got, fmt.Sprintf("%s %s %s %s %v", en.Tenant, en.Action, en.Target, en.Outcome, en.Details["matchers"]))
			}
		}
		want := []string{"a alertmanager.silence.create " + sid + " success {alertname=\"Muted\"}",
			"b alertmanager.silence.expire " + sid + " failure <nil>",
			"a alertmanager.silence.expire " + sid + " success <nil>"}
		if !slices.Equal(got, want) {
			t.Errorf("audit:\n%q\nwant\n%q", got, want)
		}
	})
}

// TestRestartKeepsState: silences and the notification log are written to
// the bucket and read back by the next process, so a firing alert sent
// again after a restart is not notified again within repeat_interval and
// a silence still mutes (#16).
func TestRestartKeepsState(t *testing.T) {
	rc := startReceiver(t)
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.PersistInterval = time.Hour // only the writes at changes and at shutdown
	e := newEnv(t, cfg, dir)
	e.setConfig("a", hookConfig(rc.URL, "a", ""))
	sid := e.createSilence("a", "Muted")
	if _, err := e.raw.Attributes(t.Context(), "a/alertmanager/silences"); err != nil {
		t.Fatalf("the silence was not written when it was created: %v", err)
	}
	firing := []map[string]string{{"alertname": "Down", "severity": "page"}, {"alertname": "Muted"}}
	e.postAlerts("a", false, firing...)
	testbin.Eventually(t, 10*time.Second, func() error {
		if n := rc.got("/a/pager"); len(n) != 1 {
			return fmt.Errorf("pager: %v", n)
		}
		// The pipeline logs a notification after the receiver answered:
		// a stop before that would rightly notify again.
		if !e.am.tenant("a").nflogDirty.Load() {
			return errors.New("the notification is not in the notification log yet")
		}
		return nil
	})
	e.stop()

	e2 := newEnv(t, cfg, dir)
	if code, body := e2.do(http.MethodGet, "/alertmanager/api/v2/silence/"+sid, "a", ""); code != http.StatusOK || !strings.Contains(body, `"state":"active"`) {
		t.Fatalf("silence after the restart: %d %s", code, body)
	}
	e2.postAlerts("a", false, firing...)
	// The new aggregation group flushes at once (group_wait 0s) and every
	// group_interval (1s) after; each flush asks the notification log
	// for each of the pager's two integrations, which says it was sent.
	testbin.Eventually(t, 20*time.Second, func() error {
		if n := e2.counter("fluxpulse_alertmanager_nflog_queries_total", map[string]string{"tenant": "a"}); n < 6 {
			return fmt.Errorf("%v notification-log queries", n)
		}
		return nil
	})
	if n := rc.got("/a/pager"); len(n) != 1 {
		t.Errorf("pager after the restart: %v, want the one notification from before", n)
	}
	if n := rc.got("/a/default"); len(n) != 0 {
		t.Errorf("the silenced alert was notified after the restart: %v", n)
	}
}

// TestLimits: alertmanager_max_alerts_count refuses new alerts over it;
// alertmanager_notification_rate_limit delays notifications, which still
// arrive (#16).
func TestLimits(t *testing.T) {
	rc := startReceiver(t)
	e := newEnv(t, testConfig(t), "")
	lim := defaultLimits(t)
	lim.AlertmanagerMaxAlertsCount = 2
	lim.AlertmanagerNotificationRateLimit = 2
	e.lim.Set(lim, nil)
	e.setConfig("a", hookConfig(rc.URL, "a", ""))
	e.postAlerts("a", false, map[string]string{"alertname": "One"}, map[string]string{"alertname": "Two"}, map[string]string{"alertname": "Three"})
	testbin.Eventually(t, 10*time.Second, func() error {
		if n := len(rc.got("/a/default")); n != 2 {
			return fmt.Errorf("%d notifications", n)
		}
		return nil
	})
	_, body := e.do(http.MethodGet, "/alertmanager/api/v2/alerts", "a", "")
	if strings.Contains(body, "Three") || !strings.Contains(body, "Two") {
		t.Errorf("alerts held: %s", body)
	}
	if n := e.counter("fluxpulse_alertmanager_alerts_refused_total", map[string]string{"tenant": "a"}); n != 1 {
		t.Errorf("refused %v alerts, want 1", n)
	}
	lim.AlertmanagerMaxAlertsCount = 0
	lim.AlertmanagerNotificationRateLimit = 1
	e.lim.Set(lim, nil)
	var burst []map[string]string
	for k := range 4 {
		burst = append(burst, map[string]string{"alertname": fmt.Sprintf("Burst%d", k)})
	}
	e.postAlerts("a", false, burst...)
	testbin.Eventually(t, 30*time.Second, func() error {
		if n := len(rc.got("/a/default")); n != 6 {
			return fmt.Errorf("%d notifications", n)
		}
		return nil
	})
	if n := e.counter("fluxpulse_alertmanager_notifications_rate_limited_total", map[string]string{"tenant": "a", "integration": "webhook"}); n == 0 {
		t.Error("no notification was delayed by the rate limit")
	}
}

// TestFallback: with -alertmanager.configs.fallback a tenant without a
// configuration gets an Alertmanager with it; without one, the ruler's
// alerts for such a tenant are dropped and counted (#16).
func TestFallback(t *testing.T) {
	rc := startReceiver(t)
	cfg := testConfig(t)
	cfg.FallbackConfigFile = filepath.Join(t.TempDir(), "fallback.yml")
	fallback := fmt.Sprintf("route: {receiver: fb, group_wait: 0s}\nreceivers: [{name: fb, webhook_configs: [{url: %q}]}]\n", rc.URL+"/fallback")
	if err := os.WriteFile(cfg.FallbackConfigFile, []byte(fallback), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, cfg, "")
	push := func(env *env, tenant string) {
		t.Helper()
		if code, body := env.do(http.MethodPost, "/push/api/v2/alerts", tenant, `[{"labels":{"alertname":"FromRuler"}}]`); code != http.StatusOK {
			t.Fatalf("push: %d %s", code, body)
		}
	}
	push(e, "c")
	testbin.Eventually(t, 10*time.Second, func() error {
		if n := rc.got("/fallback"); len(n) != 1 {
			return fmt.Errorf("fallback receiver got %v", n)
		}
		return nil
	})
	if code, body := e.do(http.MethodGet, "/alertmanager/api/v2/receivers", "d", ""); code != http.StatusOK || !strings.Contains(body, "fb") {
		t.Errorf("API of a tenant on the fallback: %d %s", code, body)
	}
	plain := newEnv(t, testConfig(t), "")
	push(plain, "c")
	if n := plain.counter("fluxpulse_alertmanager_alerts_discarded_total", map[string]string{"tenant": "c"}); n != 1 {
		t.Errorf("discarded %v posts, want 1", n)
	}
	if code, _ := plain.do(http.MethodGet, "/alertmanager/api/v2/alerts", "c", ""); code != http.StatusNotFound {
		t.Errorf("API of a tenant without configuration: %d, want 404", code)
	}
}

// TestEveryIntegrationIsBuilt fails when an Alertmanager release adds a
// kind of receiver that integrations.go does not build (it would be
// silently ignored).
func TestEveryIntegrationIsBuilt(t *testing.T) {
	src, err := os.ReadFile("integrations.go")
	if err != nil {
		t.Fatal(err)
	}
	rt := reflect.TypeFor[config.Receiver]()
	kinds := 0
	for i := range rt.NumField() {
		name := rt.Field(i).Name
		if !strings.HasSuffix(name, "Configs") {
			continue
		}
		kinds++
		if !strings.Contains(string(src), "rcv."+name) {
			t.Errorf("integrations.go does not build %s", name)
		}
	}
	if kinds < 18 {
		t.Errorf("config.Receiver has %d kinds of receivers, fewer than Alertmanager 0.35's 18", kinds)
	}
}
