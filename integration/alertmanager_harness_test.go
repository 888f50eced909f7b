package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// got returns the notifications to path.
func (wh *webhook) got(path string) []amNotification {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return slices.Clone(wh.msgs[path])
}

// summaries are the notifications to path as "status name{instance},…",
// alerts sorted.
func (wh *webhook) summaries(path string) []string {
	var out []string
	for _, n := range wh.got(path) {
		var as []string
		for _, a := range n.Alerts {
			as = append(as, a.Labels["alertname"]+"{"+a.Labels["instance"]+"}")
		}
		slices.Sort(as)
		out = append(out, n.Status+" "+strings.Join(as, ","))
	}
	return out
}

// smtpServer is a real SMTP server on loopback: Debian's python3-aiosmtpd,
// printing every message it receives.
type smtpServer struct {
	addr string
	proc *testbin.Process
}

// aiosmtpdPython finds a Python that has aiosmtpd (Debian's python3 in
// /usr/bin, which may not be the first python3 on PATH). Without one the
// test fails under CI and is skipped elsewhere.
func aiosmtpdPython(t *testing.T) string {
	t.Helper()
	for _, c := range []string{"/usr/bin/python3", "python3"} {
		p, err := exec.LookPath(c)
		if err == nil && exec.Command(p, "-c", "import aiosmtpd").Run() == nil {
			return p
		}
	}
	msg := "this test delivers e-mail to a real SMTP server, Debian's python3-aiosmtpd (apt-get install python3-aiosmtpd; .ci/run installs it), and no python3 here can import aiosmtpd"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	py := aiosmtpdPython(t)
	s := &smtpServer{addr: testbin.FreePort(t)}
	s.proc = testbin.Start(t, py, []string{"PYTHONUNBUFFERED=1"}, "-m", "aiosmtpd", "-n", "-l", s.addr)
	testbin.Eventually(t, 30*time.Second, func() error {
		if s.proc.Exited() {
			t.Fatalf("aiosmtpd exited:\n%s", s.proc.Output())
		}
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	return s
}

// messages are the messages received so far.
func (s *smtpServer) messages(t *testing.T) []*mail.Message {
	t.Helper()
	var out []*mail.Message
	for _, block := range strings.Split(s.proc.Output(), "---------- MESSAGE FOLLOWS ----------\n")[1:] {
		block, _, ok := strings.Cut(block, "------------ END MESSAGE ------------")
		if !ok {
			continue // still being printed
		}
		if strings.HasPrefix(block, "mail options:") { // aiosmtpd's line about the MAIL command, before the message
			_, block, _ = strings.Cut(block, "\n\n")
		}
		m, err := mail.ReadMessage(strings.NewReader(block))
		if err != nil {
			t.Fatalf("parse a received message: %v\n%s", err, block)
		}
		out = append(out, m)
	}
	return out
}

// subjects are the subjects of the messages to to, in order.
func (s *smtpServer) subjects(t *testing.T, to string) []string {
	var out []string
	for _, m := range s.messages(t) {
		if m.Header.Get("To") == to {
			out = append(out, m.Header.Get("Subject"))
		}
	}
	return out
}

// alertingTemplate is the template file of the tests' configuration.
const alertingTemplate = `{{ define "fp.subject" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .Alerts | len }}){{ end }}`

// alertingConfig is the Alertmanager configuration the tests give
// FluxPulse's tenants and the stand-alone Alertmanager alike; side tells
// their receivers apart (webhook path, e-mail address). Its secrets (the
// SMTP password, the webhook's token) must never be shown.
func alertingConfig(hook, smtp, side, templateDir string) string {
	return fmt.Sprintf(`global:
  smtp_smarthost: '%[2]s'
  smtp_from: alerts@fluxpulse.example
  smtp_require_tls: false
  smtp_auth_username: fluxpulse
  smtp_auth_password: smtp-password-secret
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4s
  routes:
    - matchers: ['source="ruler"']
      receiver: oncall
      repeat_interval: 1h
    - matchers: ['severity="page"']
      receiver: pager
templates: ['%[4]s/*.tmpl']
receivers:
  - name: default
    webhook_configs: [{url: '%[1]s/%[3]s/default', send_resolved: true}]
  - name: pager
    webhook_configs: [{url: '%[1]s/%[3]s/pager?token=webhook-token-secret', send_resolved: true}]
    email_configs: [{to: '%[3]s-pager@example.com', send_resolved: true, html: '', text: 'paged', headers: {Subject: '{{ template "fp.subject" . }}'}}]
  - name: oncall
    webhook_configs: [{url: '%[1]s/%[3]s/oncall', send_resolved: true}]
    email_configs: [{to: '%[3]s-oncall@example.com', send_resolved: true, html: '', text: 'on call', headers: {Subject: '{{ template "fp.subject" . }}'}}]
`, hook, smtp, side, templateDir)
}

// userConfig is the body of POST /api/v1/alerts for a configuration.
func userConfig(amConfig string) string {
	return "template_files:\n  fp.tmpl: '" + alertingTemplate + "'\nalertmanager_config: |\n  " +
		strings.ReplaceAll(strings.TrimSpace(amConfig), "\n", "\n  ") + "\n"
}

// startStandaloneAlertmanager runs Alertmanager 0.35 itself with
// configuration cfg and the template file in templateDir.
func startStandaloneAlertmanager(t *testing.T, cfg, templateDir string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(templateDir, "fp.tmpl"), []byte(alertingTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	return runAlertmanager(t, cfg)
}

// runAlertmanager runs Alertmanager 0.35 with configuration cfg, without
// clustering, and returns its URL.
func runAlertmanager(t *testing.T, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testbin.FreePort(t)
	p := testbin.Start(t, testbin.Alertmanager.Path(t), nil, "--config.file="+filepath.Join(dir, "am.yml"),
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--cluster.listen-address=")
	testbin.WaitHTTP(t, p, "http://"+addr+"/-/ready", time.Minute)
	return "http://" + addr
}

// amCall sends a request to an Alertmanager API with optional credentials
// (a bearer token; "" for none) and returns status and body.
func amCall(t *testing.T, method, url, token, orgID, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if orgID != "" {
		req.Header.Set("X-Scope-OrgID", orgID)
	}
	if strings.HasPrefix(body, "[") || strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// alertsBody is a POST /api/v2/alerts body: alerts named name with the
// given instances and labels, firing or resolved now.
func alertsBody(name string, labels map[string]string, resolved bool, instances ...string) string {
	var out []map[string]any
	for _, inst := range instances {
		ls := map[string]string{"alertname": name, "instance": inst}
		for k, v := range labels {
			ls[k] = v
		}
		a := map[string]any{"labels": ls, "annotations": map[string]string{"summary": name + " on " + inst}}
		if resolved {
			a["endsAt"] = time.Now().UTC().Format(time.RFC3339Nano)
		}
		out = append(out, a)
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// amtool runs amtool 0.35 against an Alertmanager URL and returns its
// output.
func amtool(t *testing.T, amURL string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testbin.Amtool.Path(t), append([]string{"--alertmanager.url=" + amURL}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("amtool %v: %v\n%s", args, err, out)
	}
	return string(bytes.TrimSpace(out))
}

// metricSum sums the samples of a metric in a /metrics page whose series
// carry every label of want.
func metricSum(t *testing.T, metricsURL, name string, want map[string]string) float64 {
	t.Helper()
	body, err := get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for k, v := range want {
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
			}
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); ok && err == nil {
			sum += v
		}
	}
	return sum
}
