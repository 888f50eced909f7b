package main

import (
	"context"
	"net/http"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/rpc"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// deletions are the series deletion requests (#14) as the roles of a
// process share them: the store in the bucket and the read path's cache.
type deletions struct {
	store *deletion.Store
	cache *deletion.Cache
}

func (p *process) openDeletions() error {
	if err := p.cfg.deletion.Validate(); err != nil {
		return err
	}
	store := deletion.NewStore(p.storage.enc)
	p.deletions = &deletions{store: store, cache: deletion.NewCache(store, p.cfg.deletion.ReloadPeriod)}
	return nil
}

// addDeletionAPI serves the deletion API (scope delete or admin) on the
// public listener of a querier. A request made here wakes the compactor of
// the same process, if any, so that one due at once is carried out at
// once.
func (p *process) addDeletionAPI() error {
	api, err := deletion.NewAPI(p.cfg.deletion, p.deletions.store, p.deletions.cache, p.limits, deletion.APIOptions{
		Audit: p.obs.admin,
		Changed: func(string) {
			if p.compactor != nil {
				p.compactor.Wake()
			}
		},
		WriteError: querier.WriteError,
	})
	if err != nil {
		return err
	}
	api.Register(p.public, func(h http.Handler) http.Handler {
		return p.auth.Middleware(tenantauth.ScopeDelete, querier.WriteError, h)
	})
	return nil
}

// carryOutDeletions makes the compactor carry out due requests, telling
// heads first, and records each processed one in the audit log.
func (p *process) carryOutDeletions(comp *compactor.Compactor, heads compactor.Heads) error {
	return comp.CarryOutDeletions(compactor.Deletions{Store: p.deletions.store, Heads: heads,
		Processed: func(r deletion.Request) {
			p.audit.Log(audit.Entry{Actor: audit.ActorSystem, Tenant: r.Tenant, Action: deletion.ActionProcessed, Target: r.ID,
				Outcome: audit.OutcomeSuccess, Details: map[string]any{"selectors": r.Selectors, "blocks_rewritten": r.BlocksRewritten}})
		}})
}

// clusterHeads tells every ingester of the ring of a due deletion request.
type clusterHeads struct{ m *clusterMember }

// ApplyDeletion implements compactor.Heads. Every ingester of the ring
// must be healthy; the compactor tries again in its next pass.
func (c clusterHeads) ApplyDeletion(ctx context.Context, tenant string, req deletion.Request) error {
	return c.m.eachIngester(tenantauth.With(ctx, audit.ActorSystem, tenant), "the deleted samples in their heads", func(ctx context.Context, cl *rpc.IngesterClient) error {
		return cl.ApplyDeletion(ctx, req)
	})
}
