package alertmanager

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/audit/audittest"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// env is a multi-tenant Alertmanager over an encrypted filesystem bucket,
// served over HTTP in header mode, with a real HTTP receiver on loopback.
type env struct {
	t     *testing.T
	raw   bucket.Bucket // the filesystem under the encryption
	keys  string        // the master-key file
	lim   *limits.Overrides
	audit *audittest.Recorder
	reg   *prometheus.Registry
	am    *Alertmanager
	srv   *httptest.Server
	stop  func()
}

func defaultLimits(t testing.TB) limits.Limits {
	var l limits.Limits
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	l.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	l.AlertmanagerNotificationRateLimit = 0
	return l
}

// testConfig is the default configuration, with loopback allowed for the
// test's receivers.
func testConfig(t testing.TB) Config {
	var c Config
	fs := flag.NewFlagSet("alertmanager", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c.Firewall.AllowCIDRs = CIDRList{netip.MustParsePrefix("127.0.0.0/8")}
	return c
}

// newEnv starts an Alertmanager; raw and keys are a bucket directory and
// key file to reuse ("" for new ones).
func newEnv(t *testing.T, cfg Config, dir string, listeners ...string) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	raw, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	enc := encryption.NewBucket(raw, encryption.NewKeyring(raw, kf, encryption.KeyringOptions{}))
	e := &env{t: t, raw: raw, keys: dir, lim: limits.NewOverrides(defaultLimits(t)), audit: &audittest.Recorder{}, reg: prometheus.NewRegistry()}
	e.am, err = New(cfg, Dependencies{Bucket: enc, Limits: e.lim, Audit: e.audit, Listeners: listeners}, nil, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := tenantauth.New(tenantauth.Config{Mode: "header"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.am.Register(mux, func(h http.Handler) http.Handler {
		return auth.Middleware(tenantauth.ScopeAlerts, tenantauth.PlainError, h)
	})
	mux.Handle("/push/", auth.Middleware(tenantauth.ScopeWrite, tenantauth.PlainError, e.am.PushHandler()))
	e.srv = httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.am.Run(ctx)
	}()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			e.srv.Close()
		})
	}
	t.Cleanup(e.stop)
	testbin.Eventually(t, 10*time.Second, func() error {
		if !e.am.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return e
}

// do sends a request as tenant and returns status and body.
func (e *env) do(method, path, tenant, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set(tenantauth.OrgIDHeader, tenant)
	if strings.HasPrefix(body, "[") || strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// setConfig posts a configuration and requires 201.
func (e *env) setConfig(tenant, body string) {
	e.t.Helper()
	if code, msg := e.do(http.MethodPost, "/api/v1/alerts", tenant, body); code != http.StatusCreated {
		e.t.Fatalf("POST config of %s: %d %s", tenant, code, msg)
	}
}

// postAlerts posts alerts (label sets; "endsAt" in the past resolves one)
// to the tenant's API v2 and requires 200.
func (e *env) postAlerts(tenant string, resolved bool, alerts ...map[string]string) {
	e.t.Helper()
	var out []map[string]any
	for _, ls := range alerts {
		a := map[string]any{"labels": ls, "annotations": map[string]string{"summary": "about " + ls["alertname"]}}
		if resolved {
			a["endsAt"] = time.Now().Add(-time.Second).Format(time.RFC3339Nano)
		}
		out = append(out, a)
	}
	b, _ := json.Marshal(out)
	if code, msg := e.do(http.MethodPost, "/alertmanager/api/v2/alerts", tenant, string(b)); code != http.StatusOK {
		e.t.Fatalf("POST alerts of %s: %d %s", tenant, code, msg)
	}
}

// counter reads a counter of the registry summed over series whose
// labels include want.
func (e *env) counter(name string, want map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// receiver is a real HTTP receiver: it records every notification body by
// path.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	msgs map[string][]notification
}

// notification is what the webhook and Slack integrations post, as far as
// the tests read it.
type notification struct {
	Status      string            `json:"status"`
	Receiver    string            `json:"receiver"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
	Attachments []struct {
		Title string `json:"title"`
	} `json:"attachments"` // Slack
	at time.Time
}

func startReceiver(t *testing.T) *receiver {
	rc := &receiver{msgs: map[string][]notification{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.at = time.Now()
		rc.mu.Lock()
		rc.msgs[r.URL.Path] = append(rc.msgs[r.URL.Path], n)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got(path string) []notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]notification(nil), rc.msgs[path]...)
}

// summary renders a notification as "status alertname,alertname".
func (n notification) summary() string {
	var names []string
	for _, a := range n.Alerts {
		names = append(names, a.Labels["alertname"])
	}
	return n.Status + " " + strings.Join(names, ",")
}

// hookConfig is a configuration whose receivers post to rc: severity=page
// goes to /<tenant>/pager and to Slack at /<tenant>/slack (titled by a
// template), the rest to /<tenant>/default.
func hookConfig(base, tenant, extra string) string {
	return fmt.Sprintf(`template_files:
  title.tmpl: '{{ define "fp.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} of %[2]s{{ end }}'
alertmanager_config: |
  route:
    receiver: default
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['severity="page"']
        receiver: pager
  templates: ['/etc/alertmanager/*.tmpl']
  receivers:
    - name: default
      webhook_configs:
        - url: %[1]s/%[2]s/default
          send_resolved: true
    - name: pager
      webhook_configs:
        - url: %[1]s/%[2]s/pager
          send_resolved: true
          http_config:
            basic_auth: {username: fp, password: pager-password-%[2]s}
      slack_configs:
        - api_url: %[1]s/%[2]s/slack
          channel: '#alerts'
          title: '{{ template "fp.title" . }}'
          send_resolved: true
%[3]s`, base, tenant, extra)
}
