package main

import (
	"errors"
	"flag"
	"net/http"
	"strings"

	"github.com/fluxpulse/fluxpulse/frontend"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// frontendConfig is the query frontend's configuration with how a
// frontend running apart finds its queriers.
type frontendConfig struct {
	frontend.Config
	// downstream lists the queriers' base URLs. Queriers are stateless and
	// join no ring, so a static list (or one load-balanced or DNS name
	// per entry) is what finds them, as Cortex's -frontend.downstream-url.
	downstream string
}

func (c *frontendConfig) registerFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.downstream, "query-frontend.downstream-url", "", "With -target=query-frontend: comma-separated base URLs (http[s]://host:port) of the queriers' public HTTP API; requests go to each in turn, with the client's credentials. A load balancer's URL works too.")
}

func (c frontendConfig) validate(r roles) error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if r[roleQueryFrontend] && !r[roleQuerier] && strings.TrimSpace(c.downstream) == "" {
		return errors.New("-target=query-frontend: set -query-frontend.downstream-url to the queriers' base URLs (http://host:9009,…)")
	}
	return nil
}

// newFrontend builds the query frontend in front of next.
func (p *process) newFrontend(next http.Handler) (*frontend.Frontend, error) {
	return frontend.New(p.cfg.frontend.Config, next, frontend.Options{
		Logger: p.logger.With("component", "query-frontend"), Reg: p.reg,
	})
}

// frontQuerier puts the query frontend in front of the querier of this
// process, between its limits and the Prometheus API. The configuration
// was validated with the server's, so building it cannot fail.
func (p *process) frontQuerier(q *querier.Querier) {
	q.Front(func(api http.Handler) http.Handler {
		f, err := p.newFrontend(api)
		if err != nil {
			panic("BUG: the query frontend's validated configuration is refused: " + err.Error())
		}
		return f
	})
}

// addQueryFrontend serves the query API on the public listener (read
// scope) and sends it over HTTP to the queriers of -query-frontend.downstream-url.
func (p *process) addQueryFrontend() error {
	fwd, err := frontend.NewForwarder(strings.Split(p.cfg.frontend.downstream, ","), p.cfg.querier.Timeout+p.cfg.shutdownTimeout)
	if err != nil {
		return err
	}
	f, err := p.newFrontend(fwd)
	if err != nil {
		return err
	}
	h := p.auth.Middleware(tenantauth.ScopeRead, querier.WriteError, f)
	for _, prefix := range []string{"", "/prometheus"} {
		for _, path := range querier.ReadPaths {
			p.public.Handle(prefix+path, h)
		}
		p.public.Handle(prefix+"/api/v1/status/buildinfo", fwd)
	}
	return nil
}
