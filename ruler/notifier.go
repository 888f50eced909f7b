package ruler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/notifier"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/tenantmetrics"
)

// tenantNotifier sends one tenant's alerts to its Alertmanagers. The
// notifier.Manager is created with the first Alertmanager URL and kept for
// the tenant's lifetime (its metrics cannot be registered twice); a tenant
// left without a URL gets an empty configuration, which drops alerts.
type tenantNotifier struct {
	tenant string
	reg    *tenantmetrics.Registry

	mu      sync.Mutex
	stopped bool
	urls    string // the URLs applied
	n       *notifier.Manager
	tgs     chan map[string][]*targetgroup.Group
	done    chan struct{} // closed when n.Run returns
}

// Send implements rules.Sender.
func (t *tenantNotifier) Send(alerts ...*notifier.Alert) {
	t.mu.Lock()
	n := t.n
	t.mu.Unlock()
	if n != nil {
		n.Send(alerts...)
	}
}

// Alertmanager is FluxPulse's own multi-tenant Alertmanager as the ruler
// reaches it: the alerts of a tenant go there when neither
// -ruler.alertmanager-url nor the tenant's ruler_alertmanager_url names an
// Alertmanager (#16).
type Alertmanager struct {
	// URL is its base URL: alerts are posted to URL/api/v2/alerts with
	// X-Scope-OrgID naming the tenant.
	URL string
	// Handler, when set, serves the posts in process instead of the
	// network; it finds the tenant in the request's context.
	Handler http.Handler
	// BearerTokenFile holds the credential sent with each post over the
	// network (the cluster secret), read on every request.
	BearerTokenFile string
}

// localPrefix marks the URL of FluxPulse's own Alertmanager among the
// applied URLs, so that a change between it and others is seen.
const localPrefix = "fluxpulse-alertmanager:"

// applyNotifier points the tenant's notifier at the Alertmanagers its
// limits or the flags name now, or at FluxPulse's own.
func (r *Ruler) applyNotifier(t *tenant) {
	urls := r.cfg.AlertmanagerURL
	if u := r.deps.Limits.Limits(t.id).RulerAlertmanagerURL; u != "" {
		urls = u
	}
	if urls == "" && r.deps.Alertmanager != nil {
		urls = localPrefix + r.deps.Alertmanager.URL
	}
	if err := t.notifier.apply(urls, r); err != nil && r.logs.Allow("notifier/"+t.id) {
		r.logger.Error("alerts of this tenant cannot be sent", "tenant", t.id, "err", err)
	}
}

func (t *tenantNotifier) apply(urls string, r *Ruler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if urls == t.urls || t.stopped {
		return nil
	}
	if t.n == nil && urls == "" {
		return nil
	}
	cfg, tgs, err := r.notifierConfig(urls)
	if err != nil {
		return fmt.Errorf("ruler_alertmanager_url (%s) or -%s: %w", limits.Source(limits.FlagRulerAlertmanagerURL), FlagAlertmanagerURL, err)
	}
	if t.n == nil {
		t.start(r)
	}
	if err := t.n.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("configure notifications: %w", err)
	}
	t.tgs <- tgs // Run is reading; it applies the targets before the next send
	t.urls = urls
	return nil
}

// start creates and runs the notifier. Callers hold t.mu.
func (t *tenantNotifier) start(r *Ruler) {
	id := t.tenant
	opts := &notifier.Options{
		QueueCapacity:   r.cfg.NotificationQueueCapacity,
		DrainOnShutdown: true,
		// Alertmanager itself ignores the header; a multi-tenant
		// Alertmanager (Cortex, Mimir) or a proxy routes on it.
		Do: func(ctx context.Context, c *http.Client, req *http.Request) (*http.Response, error) {
			req.Header.Set(tenantauth.OrgIDHeader, id)
			if am := r.deps.Alertmanager; am != nil && am.Handler != nil && localHost(am) == req.URL.Host {
				return serveInProcess(am.Handler, req.WithContext(tenantauth.With(ctx, actorRuler, id)))
			}
			return c.Do(req.WithContext(ctx))
		},
	}
	if r.reg != nil {
		opts.Registerer = t.reg
	}
	t.n = notifier.NewManager(opts, model.UTF8Validation, r.logger.With("tenant", id))
	t.tgs = make(chan map[string][]*targetgroup.Group)
	t.done = make(chan struct{})
	n, tgs, done := t.n, t.tgs, t.done
	go func() {
		defer close(done)
		n.Run(tgs)
	}()
}

// stop drains queued alerts (bounded by the notification timeout) and
// stops the notifier.
func (t *tenantNotifier) stop() {
	t.mu.Lock()
	n, done := t.n, t.done
	t.n, t.stopped = nil, true
	t.mu.Unlock()
	if n == nil {
		return
	}
	n.Stop()
	<-done
}

// localHost is the host of FluxPulse's own Alertmanager's URL.
func localHost(am *Alertmanager) string {
	u, err := url.Parse(am.URL)
	if err != nil {
		return ""
	}
	return u.Host
}

// serveInProcess answers a request with h, as the HTTP client would.
func serveInProcess(h http.Handler, req *http.Request) (*http.Response, error) {
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{StatusCode: rec.status, Status: http.StatusText(rec.status), Header: rec.header,
		Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: req}, nil
}

// recorder is the http.ResponseWriter of an in-process request.
type recorder struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

// notifierConfig builds the notifier configuration for a comma-separated
// list of Alertmanager URLs (or FluxPulse's own Alertmanager's, after
// localPrefix), and the static targets to feed it (the notifier does not
// resolve static configurations itself).
func (r *Ruler) notifierConfig(urls string) (*config.Config, map[string][]*targetgroup.Group, error) {
	local, isLocal := strings.CutPrefix(urls, localPrefix)
	if isLocal {
		urls = local
	}
	us, err := parseAlertmanagerURLs(urls)
	if err != nil {
		return nil, nil, err
	}
	cfg := &config.Config{GlobalConfig: config.GlobalConfig{ExternalLabels: r.extLabels}}
	tgs := map[string][]*targetgroup.Group{}
	for i, u := range us {
		amc := config.DefaultAlertmanagerConfig
		amc.Scheme = u.Scheme
		amc.PathPrefix = u.Path
		amc.Timeout = model.Duration(r.cfg.NotificationTimeout)
		amc.HTTPClientConfig = r.httpClientConfig(u)
		if isLocal {
			amc.HTTPClientConfig = config.DefaultAlertmanagerConfig.HTTPClientConfig
			if f := r.deps.Alertmanager.BearerTokenFile; f != "" {
				amc.HTTPClientConfig.Authorization = &config_util.Authorization{Type: "Bearer", CredentialsFile: f}
			}
		}
		if err := amc.HTTPClientConfig.Validate(); err != nil {
			return nil, nil, fmt.Errorf("alertmanager %s: %w", u.Redacted(), err)
		}
		cfg.AlertingConfig.AlertmanagerConfigs = append(cfg.AlertingConfig.AlertmanagerConfigs, &amc)
		tgs[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
			Source:  fmt.Sprintf("alertmanager-%d", i),
		}}
	}
	return cfg, tgs, nil
}

// httpClientConfig authenticates to one Alertmanager: with the credentials
// in its URL, else with the client flags.
func (r *Ruler) httpClientConfig(u *url.URL) config_util.HTTPClientConfig {
	hc := config.DefaultAlertmanagerConfig.HTTPClientConfig
	c := r.cfg.AlertmanagerClient
	switch {
	case u.User != nil:
		pw, _ := u.User.Password()
		hc.BasicAuth = &config_util.BasicAuth{Username: u.User.Username(), Password: config_util.Secret(pw)}
	case c.BearerTokenFile != "":
		hc.Authorization = &config_util.Authorization{Type: "Bearer", CredentialsFile: c.BearerTokenFile}
	case c.BasicAuthUsername != "" || c.BasicAuthPasswordFile != "":
		hc.BasicAuth = &config_util.BasicAuth{Username: c.BasicAuthUsername, PasswordFile: c.BasicAuthPasswordFile}
	}
	return hc
}

// parseAlertmanagerURLs parses a comma-separated list of http(s) URLs.
func parseAlertmanagerURLs(s string) ([]*url.URL, error) {
	var out []*url.URL
	for raw := range strings.SplitSeq(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			// The error would repeat the URL, with any password in it.
			return nil, errors.New("an Alertmanager URL does not parse")
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("alertmanager URL %s must be http:// or https:// with a host", u.Redacted())
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("alertmanager URL %s must not have a query or fragment", u.Redacted())
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		out = append(out, u)
	}
	return out, nil
}
