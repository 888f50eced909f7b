package ruler

import (
	"context"
	"errors"
	"fmt"
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

// applyNotifier points the tenant's notifier at the Alertmanagers its
// limits or the flags name now.
func (r *Ruler) applyNotifier(t *tenant) {
	urls := r.cfg.AlertmanagerURL
	if u := r.deps.Limits.Limits(t.id).RulerAlertmanagerURL; u != "" {
		urls = u
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

// notifierConfig builds the notifier configuration for a comma-separated
// list of Alertmanager URLs, and the static targets to feed it (the
// notifier does not resolve static configurations itself).
func (r *Ruler) notifierConfig(urls string) (*config.Config, map[string][]*targetgroup.Group, error) {
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
