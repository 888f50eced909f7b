package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"net/http"
	"strings"

	"github.com/fluxpulse/fluxpulse/frontend"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/queryqueue"
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
	// queue is the fair queue every request to the queriers waits in.
	queue queryqueue.Config
}

func (c *frontendConfig) registerFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	c.queue.RegisterFlags(fs)
	fs.StringVar(&c.downstream, "query-frontend.downstream-url", "", "With -target=query-frontend: comma-separated base URLs (http[s]://host:port) of the queriers' public HTTP API; requests go to each in turn, with the client's credentials. A load balancer's URL works too.")
}

func (c frontendConfig) validate(r roles) error {
	if err := errors.Join(c.Config.Validate(), c.queue.Validate()); err != nil {
		return err
	}
	if r[roleQueryFrontend] && !r[roleQuerier] && strings.TrimSpace(c.downstream) == "" {
		return errors.New("-target=query-frontend: set -query-frontend.downstream-url to the queriers' base URLs (http://host:9009,…)")
	}
	return nil
}

// newFrontend builds the query frontend in front of next, with the fair
// queue of its requests to the queriers and its results cache: values encrypted with a key derived from each tenant's
// data key, entries named by the tenant's deletion requests so that a new
// one (or a cancelled one) makes every cached result of the tenant
// unreachable.
func (p *process) newFrontend(next http.Handler) (*frontend.Frontend, error) {
	cache, err := frontend.NewCache(p.cfg.frontend.ResultsCache)
	if err != nil {
		return nil, err
	}
	if cache != nil {
		p.onClose("results cache", cache.Close)
	}
	logger := p.logger.With("component", "query-frontend")
	queue, err := queryqueue.New(p.cfg.frontend.queue, p.limits, logger, p.reg)
	if err != nil {
		return nil, err
	}
	return frontend.New(p.cfg.frontend.Config, next, frontend.Options{
		Scheduler: queue,
		Cache:     cache,
		Key: func(ctx context.Context, tenant string) ([]byte, error) {
			_, key, err := p.storage.keys.DerivedKey(ctx, tenant, "results cache", 32)
			return key, err
		},
		Generation: p.cacheGeneration,
		Logger:     logger, Reg: p.reg,
	})
}

// cacheGeneration is a digest of the tenant's deletion requests that hide
// data, as the read path sees them (this process's deletion cache, which
// every process reloads from the bucket).
func (p *process) cacheGeneration(ctx context.Context, tenant string) (string, error) {
	reqs, err := p.deletions.cache.Hiding(ctx, tenant)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, r := range reqs {
		h.Write([]byte(r.ID))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
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
