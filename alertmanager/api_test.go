package alertmanager

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// wrap turns an Alertmanager configuration into a request body.
func wrap(amConfig string) string {
	return "alertmanager_config: |\n  " + strings.ReplaceAll(strings.TrimSpace(amConfig), "\n", "\n  ") + "\n"
}

const minimalRoute = "route: {receiver: r}\nreceivers: [{name: r}]\n"

// TestConfigRefusals: every refusal of POST /api/v1/alerts is 400 and
// names the field or the limit, and none repeats a secret (#16).
func TestConfigRefusals(t *testing.T) {
	e := newEnv(t, testConfig(t), "")
	lim := defaultLimits(t)
	lim.AlertmanagerMaxConfigSizeBytes = 2000
	lim.AlertmanagerMaxTemplatesCount = 2
	lim.AlertmanagerMaxTemplateSizeBytes = 100
	e.lim.Set(lim, nil)
	webhook := func(extra string) string {
		return wrap("route: {receiver: r}\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: http://example.com/hook\n" + extra)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"not YAML", "{{{", "not YAML"},
		{"unknown top-level key", "templates_files: {}\n" + wrap(minimalRoute), "templates_files"},
		{"no configuration", "template_files: {}\n", "alertmanager_config is missing"},
		{"unknown field", wrap("route: {receivr: r}\nreceivers: [{name: r}]"), "receivr"},
		{"undefined receiver", wrap("route: {receiver: nobody}\nreceivers: [{name: r}]"), `undefined receiver "nobody"`},
		{"password file", webhook("        http_config: {basic_auth: {username: u, password_file: /etc/shadow}}"), "http_config.basic_auth.password_file: files on the server"},
		{"bearer token file", webhook("        http_config: {bearer_token_file: /etc/shadow}"), "credentials_file: files on the server"},
		{"CA file", webhook("        http_config: {tls_config: {ca_file: /etc/ssl/x.pem}}"), "tls_config.ca_file"},
		{"header files", webhook("        http_config: {http_headers: {X-A: {files: [/etc/passwd]}}}"), "files: files on the server"},
		{"URL file", wrap("route: {receiver: r}\nreceivers:\n  - name: r\n    webhook_configs:\n      - url_file: /etc/passwd"), "url_file"},
		{"global file", wrap("global: {slack_api_url_file: /etc/passwd}\n" + minimalRoute), "global.slack_api_url_file"},
		{"proxy from environment", webhook("        http_config: {proxy_from_environment: true}"), "proxy_from_environment: the server's proxy"},
		{"server's AWS credentials", wrap("route: {receiver: r}\nreceivers:\n  - name: r\n    sns_configs:\n      - {topic_arn: 'arn:aws:sns:us-east-1:1:t', sigv4: {region: us-east-1}}"), "access_key and secret_key are required"},
		{"AWS profile", wrap("route: {receiver: r}\nreceivers:\n  - name: r\n    sns_configs:\n      - {topic_arn: 'arn:aws:sns:us-east-1:1:t', sigv4: {region: us-east-1, profile: prod}}"), "sigv4.profile"},
		{"tracing", wrap("tracing: {endpoint: 'collector:4317', client_type: grpc, insecure: true}\n" + minimalRoute), "tracing: not allowed"},
		{"configuration too large", wrap(minimalRoute + "# " + strings.Repeat("x", 2000)), "alertmanager_max_config_size_bytes"},
		{"too many templates", "template_files: {a.tmpl: '', b.tmpl: '', c.tmpl: ''}\n" + wrap(minimalRoute), "alertmanager_max_templates_count"},
		{"template too large", "template_files: {a.tmpl: '" + strings.Repeat("x", 101) + "'}\n" + wrap(minimalRoute), `template_files["a.tmpl"] is 101 bytes`},
		{"template syntax", "template_files: {a.tmpl: '{{ define \"x\" }}{{ .Nope'}\n" + wrap("templates: ['*.tmpl']\n"+minimalRoute), `template_files["a.tmpl"]`},
		{"template name", "template_files: {'../a.tmpl': ''}\n" + wrap(minimalRoute), "not a valid template name"},
		// Alertmanager 0.35's parser panics on this (found by FuzzUserConfig).
		{"null route", wrap("route: {receiver: r, routes: [null]}\nreceivers: [{name: r}]"), "parser failed"},
		{"bad pattern", wrap("templates: ['[']\n" + minimalRoute), "templates[0]"},
		{"placeholder without a stored secret", wrap("route: {receiver: r}\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: <secret>"), "receivers[name=r].webhook_configs[0].url holds <secret>"},
		{"secret in a parse error", wrap("route: {receiver: r}\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: 'http://exa mple.com/hook?token=TOPSECRET42'"), "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := e.do(http.MethodPost, "/api/v1/alerts", "a", tc.body)
			if code != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
				t.Fatalf("%d %q, want 400 naming %q", code, msg, tc.want)
			}
			for _, secret := range []string{"TOPSECRET42", "/etc/shadow"} {
				if strings.Contains(msg, secret) && !strings.Contains(tc.body, "_file: "+secret) {
					t.Errorf("the answer repeats %q: %s", secret, msg)
				}
			}
		})
	}
	if code, _ := e.do(http.MethodGet, "/api/v1/alerts", "a", ""); code != http.StatusNotFound {
		t.Errorf("GET after refusals: %d, want 404 (nothing stored)", code)
	}
	for _, en := range e.audit.Entries() {
		if en.Action != audit.ActionAlertmanagerConfigChange || en.Outcome != audit.OutcomeFailure {
			t.Errorf("audit entry %+v, want a failed config change", en)
		}
		if s := fmt.Sprint(en.Details); strings.Contains(s, "TOPSECRET42") {
			t.Errorf("audit entry holds a secret: %s", s)
		}
	}
}

// TestConfigRoundTrip: GET answers the configuration with every secret
// replaced by <secret>; posting that back keeps the stored secrets (the
// receiver still authenticates); DELETE removes it (#16).
func TestConfigRoundTrip(t *testing.T) {
	rc := startReceiver(t)
	e := newEnv(t, testConfig(t), "")
	body := hookConfig(rc.URL, "a", "  # a comment that GET keeps\n")
	e.setConfig("a", body)
	code, got := e.do(http.MethodGet, "/api/v1/alerts", "a", "")
	if code != http.StatusOK || strings.Contains(got, "pager-password-a") || strings.Contains(got, rc.URL) {
		t.Fatalf("GET: %d, secrets shown:\n%s", code, got)
	}
	for _, want := range []string{"password: <secret>", "url: <secret>", "api_url: <secret>", "# a comment that GET keeps", "fp.title"} {
		if !strings.Contains(got, want) {
			t.Errorf("GET lacks %q:\n%s", want, got)
		}
	}
	// Change the routing only, posting what GET gave back.
	changed := strings.Replace(got, "group_by: [alertname]", "group_by: [alertname, team]", 1)
	e.setConfig("a", changed)
	e.postAlerts("a", false, map[string]string{"alertname": "Down", "severity": "page"})
	testbin.Eventually(t, 10*time.Second, func() error {
		if n := rc.got("/a/pager"); len(n) == 0 || n[0].GroupLabels["alertname"] != "Down" {
			return fmt.Errorf("pager got %v", n)
		}
		if n := rc.got("/a/slack"); len(n) == 0 || n[0].Attachments[0].Title != "[FIRING] Down of a" {
			return fmt.Errorf("slack got %+v", n)
		}
		return nil
	})
	raw := rawObject(t, e.raw, "a/alertmanager/config.yaml")
	if bytes.Contains(raw, []byte("pager-password-a")) || bytes.Contains(raw, []byte("group_by")) {
		t.Error("the stored configuration is not encrypted")
	}
	if code, _ := e.do(http.MethodDelete, "/api/v1/alerts", "a", ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := e.do(http.MethodGet, "/api/v1/alerts", "a", ""); code != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
	if code, _ := e.do(http.MethodGet, "/alertmanager/api/v2/alerts", "a", ""); code != http.StatusNotFound {
		t.Errorf("API after DELETE: %d, want 404", code)
	}
	if code, _ := e.do(http.MethodDelete, "/api/v1/alerts", "a", ""); code != http.StatusOK {
		t.Errorf("second DELETE: %d, want 200", code)
	}
	// The tenant is known to have no configuration now; one posted again
	// applies at once all the same.
	e.setConfig("a", body)
	if code, got := e.do(http.MethodGet, "/alertmanager/api/v2/receivers", "a", ""); code != http.StatusOK || !strings.Contains(got, "pager") {
		t.Errorf("API after posting again: %d %s", code, got)
	}
	e.do(http.MethodDelete, "/api/v1/alerts", "a", "")
	if n := e.counter("fluxpulse_alertmanager_notifications_total", map[string]string{"tenant": "a"}); n != 0 {
		t.Errorf("the deleted tenant still has notification metrics: %v", n)
	}
	var actions []string
	for _, en := range e.audit.Entries() {
		actions = append(actions, en.Action+" "+en.Outcome)
	}
	want := "alertmanager.config.change success,alertmanager.config.change success,alertmanager.config.delete success,alertmanager.config.delete success," +
		"alertmanager.config.change success,alertmanager.config.delete success"
	if strings.Join(actions, ",") != want {
		t.Errorf("audit: %v, want %s", actions, want)
	}
}

func rawObject(t *testing.T, bkt bucket.Bucket, name string) []byte {
	t.Helper()
	rc, err := bkt.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRedact: error messages lose every secret, also in the shortened
// form the YAML parser quotes long values in.
func TestRedact(t *testing.T) {
	secrets := secretValues("global: {smtp_auth_password: SUPERSECRETPASSWORD}\nreceivers: [{name: r, webhook_configs: [{url: 'http://h/TOKEN'}]}]\n")
	if len(secrets) != 2 {
		t.Fatalf("secrets %q", secrets)
	}
	for _, msg := range []string{
		"line 1: cannot unmarshal !!str `SUPERSE...` into int",
		"parse \"http://h/TOKEN\": bad",
		"SUPERSECRETPASSWORD",
	} {
		if got := redact(msg, secrets); strings.Contains(got, "SUPERSE") || strings.Contains(got, "TOKEN") {
			t.Errorf("redact(%q) = %q", msg, got)
		}
	}
}

// TestSecretsShownAsPlaceholders: every kind of secret of a configuration
// is shown as <secret>, and posting the shown text back restores each
// (#16).
func TestSecretsShownAsPlaceholders(t *testing.T) {
	stored := `global:
  smtp_auth_password: smtp-pass
  slack_api_url: 'https://hooks.slack.com/services/SLACKTOKEN'
route: {receiver: r}
receivers:
  - name: r
    webhook_configs:
      - url: 'https://hook.example/x?token=HOOKTOKEN'
        http_config:
          proxy_url: 'http://user:PROXYPASS@proxy.example:3128'
          basic_auth: {username: u, password: BASICPASS}
          http_headers: {X-Key: {secrets: [HEADERSECRET]}}
    pagerduty_configs:
      - routing_key: PDKEY
    opsgenie_configs:
      - {api_key: OGKEY, api_url: 'https://og:OGPASS@api.opsgenie.example/'}
`
	shown, err := redactSecrets(stored)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"smtp-pass", "SLACKTOKEN", "HOOKTOKEN", "PROXYPASS", "BASICPASS", "HEADERSECRET", "PDKEY", "OGKEY", "OGPASS"} {
		if strings.Contains(shown, secret) {
			t.Errorf("shown: %q is visible:\n%s", secret, shown)
		}
	}
	if n := strings.Count(shown, secretPlaceholder); n != 9 {
		t.Errorf("%d placeholders, want 9:\n%s", n, shown)
	}
	back, err := restoreSecrets(shown, stored)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := secretValues(back), secretValues(stored); !slices.Equal(got, want) {
		t.Errorf("restored secrets %q, want %q", got, want)
	}
	if _, err := loadConfig(back); err != nil {
		t.Errorf("the restored configuration does not load: %v", err)
	}
	// The API's status shows the configuration as Alertmanager prints it,
	// redacted the same way.
	e := newEnv(t, testConfig(t), "")
	e.setConfig("a", wrap(stored))
	code, status := e.do(http.MethodGet, "/alertmanager/api/v2/status", "a", "")
	if code != http.StatusOK || !strings.Contains(status, `"original":"global:`) {
		t.Fatalf("status: %d %s", code, status)
	}
	for _, secret := range []string{"smtp-pass", "SLACKTOKEN", "HOOKTOKEN", "PROXYPASS", "BASICPASS", "HEADERSECRET", "PDKEY", "OGKEY", "OGPASS"} {
		if strings.Contains(status, secret) {
			t.Errorf("status: %q is visible", secret)
		}
	}
}
