package main

import (
	"context"
	"flag"
	"net/http"
	"time"

	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/ruler"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// rulerConfig is the ruler's part of the server configuration.
type rulerConfig struct {
	ruler.Config
}

func (c *rulerConfig) registerFlags(fs *flag.FlagSet) { c.Config.RegisterFlags(fs) }

// rulerFeatures are advertised in status/buildinfo as Mimir advertises
// them: Grafana offers rule editing when ruler_config_api is "true".
func rulerFeatures() map[string]string {
	return map[string]string{"ruler_config_api": "true"}
}

// addRuler builds the ruler: it evaluates with the querier's engine over
// the querier's queryable (so per-tenant query limits apply), writes
// through pusher (the distributor, so recording rules are validated and
// counted like any push), keeps rule groups in the encrypted bucket, and
// sends alerts to the tenants' own Alertmanagers unless a flag or limit
// says otherwise (rulerAlertmanager).
// It starts evaluating once dataReady says the data it reads is there:
// restoring alerts' for state reads ALERTS_FOR_STATE.
func (p *process) addRuler(q *queryRole, pusher ruler.Pusher, dataReady func() bool) error {
	rul, err := ruler.New(p.cfg.ruler.Config, ruler.Dependencies{Engine: q.Engine(), Queryable: q.queryable, Pusher: pusher,
		Bucket: p.storage.enc, Limits: p.limits, Audit: p.audit, Alertmanager: p.rulerAlertmanager()}, p.logger.With("component", "ruler"), p.reg)
	if err != nil {
		return err
	}
	if p.member != nil {
		if err := p.shardRuler(rul); err != nil {
			return err
		}
	}
	// The rules configuration API has scope rules and answers errors as
	// text, as Cortex and Mimir do; the Prometheus rules and alerts
	// endpoints have scope read and answer JSON.
	rul.Register(p.public,
		func(h http.Handler) http.Handler {
			return p.auth.Middleware(tenantauth.ScopeRules, tenantauth.PlainError, h)
		},
		func(h http.Handler) http.Handler {
			return p.auth.Middleware(tenantauth.ScopeRead, querier.WriteError, h)
		})
	p.addLoop(func(ctx context.Context) error {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for !dataReady() {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		return rul.Run(ctx)
	})
	return nil
}
