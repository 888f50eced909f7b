package main

import (
	"context"
	"fmt"

	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/usage"
)

// usageStoreDir is where every process ships its usage hours, below
// encryption.SystemPrefix; usageKeyPurpose labels the keys that seal them.
const (
	usageStoreDir   = "usage"
	usageKeyPurpose = "fluxpulse usage hours v1"
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
	kf, err := encryption.LoadKeyFile(p.cfg.encryption.KeyFile)
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	opts := usage.Options{Remote: encryption.NewSystemStore(p.storage.raw, usageStoreDir, kf.Derive(usageKeyPurpose)),
		Instance: p.instance, Checkpoint: p.cfg.usageCheckpoint}
	if ing != nil && !p.cfg.roles.all() {
		opts.ReplicationFactor = p.cfg.cluster.Ring.ReplicationFactor
	}
	rec, err := usage.NewRecorderWithOptions(usageDir(p.cfg.dataDir), gauges, opts, p.logger.With("component", "usage"), p.reg)
	if err != nil {
		return err
	}
	p.usage = rec
	p.obs.usage = rec
	p.addLoop(rec.Run)
	p.public.Handle("GET /api/v1/admin/usage", p.auth.Middleware(tenantauth.ScopeAdmin, querier.WriteError, rec.Handler(allowedUsage)))
	return nil
}
