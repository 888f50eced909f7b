package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/fluxpulse/fluxpulse/alertmanager"
	"github.com/fluxpulse/fluxpulse/ruler"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// alertmanagerConfig is the Alertmanager's part of the server
// configuration, with how a ruler running apart reaches it.
type alertmanagerConfig struct {
	alertmanager.Config
	multitenantURL string
}

const flagMultitenantURL = "ruler.multitenant-alertmanager-url"

func (c *alertmanagerConfig) registerFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.multitenantURL, flagMultitenantURL, "", "With roles apart: base URL (http[s]://host:port) of the process running -target=alertmanager. A ruler sends each tenant's alerts there, authenticated with the cluster secret (-server.grpc-auth-token-file), unless -ruler.alertmanager-url or the tenant's ruler_alertmanager_url names another Alertmanager. A ruler in the same process as the alertmanager calls it in process.")
}

func (c *alertmanagerConfig) validate() error {
	if c.multitenantURL == "" {
		return nil
	}
	u, err := url.Parse(c.multitenantURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("-%s must be http:// or https:// with a host and nothing after the path, got %q", flagMultitenantURL, redactURLs(c.multitenantURL))
	}
	return nil
}

// Where the ruler reaches the Alertmanager: the in-process URL is never
// dialled (the ruler hands such requests to the handler), the internal
// route is on the public listener and takes only the cluster secret.
const (
	inProcessAlertmanagerURL = "http://alertmanager.in-process.invalid"
	internalAlertsPrefix     = "/internal/alertmanager"
)

// addAlertmanager builds the multi-tenant Alertmanager: the configuration
// API (/api/v1/alerts) and every tenant's Alertmanager API v2
// (/alertmanager/api/v2/…), scope alerts; with roles apart, the internal
// route rulers post alerts to. /ready waits for the configurations stored
// at start to be loaded; at shutdown every tenant's silences and
// notification log are written to the bucket.
func (p *process) addAlertmanager() error {
	am, err := alertmanager.New(p.cfg.alertmanager.Config, alertmanager.Dependencies{Bucket: p.storage.enc, Limits: p.limits,
		Audit: p.audit, Listeners: p.listenAddresses()}, p.logger.With("component", "alertmanager"), p.reg)
	if err != nil {
		return err
	}
	am.Register(p.public, func(h http.Handler) http.Handler {
		return p.auth.Middleware(tenantauth.ScopeAlerts, tenantauth.PlainError, h)
	})
	if p.member != nil {
		p.public.Handle("POST "+internalAlertsPrefix+"/api/v2/alerts", p.clusterOnly(am.PushHandler()))
	}
	p.addLoop(am.Run)
	p.checks = append(p.checks, func() string {
		if !am.Ready() {
			return "alertmanager is loading the tenants' configurations"
		}
		return ""
	})
	p.am = am
	return nil
}

// rulerAlertmanager is where the ruler sends the alerts no flag or limit
// sends elsewhere: the Alertmanager of this process, else the one of
// -ruler.multitenant-alertmanager-url, else none.
func (p *process) rulerAlertmanager() *ruler.Alertmanager {
	if p.am != nil {
		return &ruler.Alertmanager{URL: inProcessAlertmanagerURL, Handler: p.am.PushHandler()}
	}
	if u := p.cfg.alertmanager.multitenantURL; u != "" {
		return &ruler.Alertmanager{URL: strings.TrimSuffix(u, "/") + internalAlertsPrefix, BearerTokenFile: p.cfg.cluster.grpcAuthFile}
	}
	return nil
}

// clusterOnly serves h to callers with the cluster secret only, for the
// tenant X-Scope-OrgID names: a ruler running apart acts for its tenants
// without their tokens.
func (p *process) clusterOnly(h http.Handler) http.Handler {
	cred := p.member.cred
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cred.AuthorizedHTTP(r.Header.Get("Authorization")) {
			http.Error(w, "this route takes the cluster credential (-server.grpc-auth-token-file) only", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(tenantauth.OrgIDHeader)
		if err := tenantauth.ValidateID(id); err != nil {
			http.Error(w, "invalid "+tenantauth.OrgIDHeader+" header: "+err.Error(), http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, r.WithContext(tenantauth.With(r.Context(), "ruler", id)))
	})
}

// listenAddresses are the addresses this process listens on, which
// notifications may never reach.
func (p *process) listenAddresses() []string {
	out := []string{p.cfg.httpAddr}
	if p.cfg.internalAddr != "" {
		out = append(out, p.cfg.internalAddr)
	}
	if !p.cfg.roles.all() {
		out = append(out, p.cfg.cluster.grpcAddr)
		port := strconv.Itoa(p.cfg.cluster.Memberlist.TCPTransport.BindPort)
		addrs := p.cfg.cluster.Memberlist.TCPTransport.BindAddrs
		if len(addrs) == 0 {
			addrs = []string{""}
		}
		for _, a := range addrs {
			out = append(out, net.JoinHostPort(a, port))
		}
	}
	return out
}
