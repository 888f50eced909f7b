package main

import (
	"context"

	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/usage"
)

// activeSeries reports the series each tenant has in an ingester's heads.
type activeSeries interface {
	ActiveSeries() map[string]int64
}

// addUsage builds the usage recorder: the roles report what each tenant
// sent and read, ing (nil in a process without an ingester) the active
// series, and the bucket the bytes each tenant keeps. It writes hourly
// files and serves the report (admin scope).
func (p *process) addUsage(ing activeSeries) error {
	// A tenant whose objects could not be listed keeps the figure of its
	// last complete listing rather than a short one. The gauge function
	// is called from the recorder's loop only.
	lastStored := map[string]int64{}
	gauges := func() map[string]usage.Gauges {
		out := map[string]usage.Gauges{}
		if ing == nil {
			return out
		}
		active := ing.ActiveSeries()
		tenants := make([]string, 0, len(active))
		for t := range active {
			tenants = append(tenants, t)
		}
		stored := storedBytes(context.Background(), p.storage.raw, tenants, p.logger)
		for t, n := range active {
			if b, ok := stored[t]; ok {
				lastStored[t] = b
			}
			out[t] = usage.Gauges{ActiveSeries: n, StoredBytes: lastStored[t]}
		}
		return out
	}
	rec, err := usage.NewRecorder(usageDir(p.cfg.dataDir), gauges, p.logger.With("component", "usage"), p.reg)
	if err != nil {
		return err
	}
	p.usage = rec
	p.obs.usage = rec
	p.addLoop(rec.Run)
	p.public.Handle("GET /api/v1/admin/usage", p.auth.Middleware(tenantauth.ScopeAdmin, querier.WriteError, rec.Handler(allowedUsage)))
	return nil
}
