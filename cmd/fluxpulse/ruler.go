package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// newRuler builds the ruler: it evaluates with the querier's engine over
// the API's queryable (so per-tenant query limits apply), writes through
// the distributor and keeps rule groups in the encrypted bucket.
func newRuler(cfg rulerConfig, deps ruler.Dependencies, logger *slog.Logger, reg prometheus.Registerer) (*ruler.Ruler, error) {
	return ruler.New(cfg.Config, deps, logger.With("component", "ruler"), reg)
}

// registerRuler adds the rules configuration API (scope rules, errors as
// text as in Cortex and Mimir) and the Prometheus rules and alerts
// endpoints (scope read, JSON errors) to mux.
func registerRuler(mux *http.ServeMux, r *ruler.Ruler, auth *tenantauth.Authenticator) {
	r.Register(mux,
		func(h http.Handler) http.Handler {
			return auth.Middleware(tenantauth.ScopeRules, tenantauth.PlainError, h)
		},
		func(h http.Handler) http.Handler { return auth.Middleware(tenantauth.ScopeRead, querier.WriteError, h) })
}

// runRuler runs the ruler once the ingester has replayed its write-ahead
// logs: restoring alerts' for state reads ALERTS_FOR_STATE, which must be
// visible by then.
func (s *server) runRuler(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !s.ing.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	return s.ruler.Run(ctx)
}
