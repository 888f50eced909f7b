package main

import (
	"net/http"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// queryRole is the querier of a process with what the ruler and the admin
// API use of it.
type queryRole struct {
	*querier.Querier
	queryable *querier.Queryable
	store     tenantForgetter // what reads the bucket's blocks
}

// addQuerier builds the querier over the ingesters (recent data) and the
// block store (shipped data) and serves the Prometheus query API (read
// scope).
func (p *process) addQuerier(ing ingesterSource) (*queryRole, error) {
	return p.newQuerier(ing, true)
}

// newQuerier builds a querier; with serve, it answers the query API on the
// public listener, else it is only the ruler's way to read.
func (p *process) newQuerier(ing ingesterSource, serve bool) (*queryRole, error) {
	store, err := p.blockSource()
	if err != nil {
		return nil, err
	}
	queryable := querier.NewQueryable(p.limits, p.cfg.querier.LookbackDelta, ing, ing, store)
	queryable.HideDeleted(p.deletions.cache)
	rev, date := buildRevision()
	q, err := querier.New(p.cfg.querier, queryable, ing,
		querier.BuildInfo{Version: version, Revision: rev, BuildDate: date, Features: rulerFeatures()}, p.logger.With("component", "querier"), p.reg)
	if err != nil {
		return nil, err
	}
	q.Observe(p.obs.query)
	if !serve {
		return &queryRole{Querier: q, queryable: queryable, store: store}, nil
	}
	if p.cfg.roles.has(roleQueryFrontend) {
		p.frontQuerier(q)
	}
	q.Register(p.public, func(h http.Handler) http.Handler {
		return p.auth.Middleware(tenantauth.ScopeRead, querier.WriteError, h)
	})
	if err := p.addDeletionAPI(); err != nil {
		return nil, err
	}
	return &queryRole{Querier: q, queryable: queryable, store: store}, nil
}

// blockSource is what reads the bucket's blocks for the querier: the
// store-gateways when the cluster shards blocks over them, else a block
// store of its own.
func (p *process) blockSource() (interface {
	querier.Source
	tenantForgetter
}, error) {
	if p.member != nil && p.cfg.storeGateway.ShardingEnabled {
		return p.storeGateways()
	}
	store, err := blockstore.New(p.cfg.store, p.storage.enc, p.logger.With("component", "store"), p.reg)
	if err != nil {
		return nil, err
	}
	p.onClose("block store", store.Close)
	return store, nil
}

// ingesterSource is what the querier reads of the ingesters: series,
// exemplars and metadata.
type ingesterSource interface {
	querier.Source
	querier.ExemplarSource
	querier.MetadataSource
}
