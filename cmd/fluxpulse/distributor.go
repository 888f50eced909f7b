package main

import (
	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// addDistributor builds the distributor in front of pusher and serves
// remote write on /api/v1/push and /api/v1/write (write scope).
func (p *process) addDistributor(pusher distributor.Pusher) (*distributor.Distributor, error) {
	dist, err := distributor.New(p.cfg.distributor, pusher, p.limits, p.logger.With("component", "distributor"), p.reg)
	if err != nil {
		return nil, err
	}
	dist.Observe(p.obs.push)
	write := p.auth.Middleware(tenantauth.ScopeWrite, tenantauth.PlainError, dist)
	p.public.Handle("POST /api/v1/push", write)
	p.public.Handle("POST /api/v1/write", write)
	return dist, nil
}
