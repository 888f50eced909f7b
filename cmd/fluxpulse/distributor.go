package main

import (
	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/hatracker"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// addHATracker builds the HA tracker when -distributor.ha-tracker.enable
// is set, over store: the memberlist KV store when roles run apart, an
// in-process one otherwise.
func (p *process) addHATracker(store hatracker.Store) error {
	if !p.cfg.ha.Enabled {
		return nil
	}
	t, err := hatracker.New(p.cfg.ha, store, p.logger.With("component", "ha-tracker"), p.reg)
	if err != nil {
		return err
	}
	p.ha = t
	p.addLoop(t.Run)
	return nil
}

// addDistributor builds the distributor in front of pusher and serves
// remote write on /api/v1/push and /api/v1/write (write scope).
func (p *process) addDistributor(pusher distributor.Pusher) (*distributor.Distributor, error) {
	return p.newDistributor(pusher, true)
}

// newDistributor builds a distributor; with serve, it takes remote write
// on the public listener, else it is only the ruler's way to write.
func (p *process) newDistributor(pusher distributor.Pusher, serve bool) (*distributor.Distributor, error) {
	dist, err := distributor.New(p.cfg.distributor, pusher, p.limits, p.logger.With("component", "distributor"), p.reg)
	if err != nil {
		return nil, err
	}
	dist.Observe(p.obs.push)
	if p.ha != nil {
		dist.SetHATracker(p.ha)
	}
	if !serve {
		return dist, nil
	}
	write := p.auth.Middleware(tenantauth.ScopeWrite, tenantauth.PlainError, dist)
	p.public.Handle("POST /api/v1/push", write)
	p.public.Handle("POST /api/v1/write", write)
	return dist, nil
}
