package main

import (
	"path/filepath"

	ringclient "github.com/grafana/dskit/ring/client"
	"google.golang.org/grpc"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/cluster"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/rpc"
	"github.com/fluxpulse/fluxpulse/storegateway"
)

const storeGatewayRingName = "store-gateway"

// storeGatewayRing returns the store-gateway ring, added on first use; a
// process that runs a store-gateway registers in it.
func (p *process) storeGatewayRing() (*cluster.RoleRing, error) {
	if p.sgRing != nil {
		return p.sgRing, nil
	}
	rr, err := p.roleRing(storeGatewayRingName, storegateway.RingPrefix, p.cfg.storeGateway.Ring, p.cfg.roles[roleStoreGateway])
	if err != nil {
		return nil, err
	}
	p.sgRing = rr
	return rr, nil
}

// addStoreGateway runs a store-gateway: a block store of its own (under
// <data.dir>/store-gateway) restricted to the blocks it owns in the ring,
// synced in the background and served over the process's gRPC listener.
func (p *process) addStoreGateway() error {
	rr, err := p.storeGatewayRing()
	if err != nil {
		return err
	}
	cfg := p.cfg.store
	cfg.Dir = filepath.Join(p.cfg.dataDir, "store-gateway")
	logger := p.logger.With("component", "store-gateway")
	store, err := blockstore.New(cfg, p.storage.enc, logger, p.reg)
	if err != nil {
		return err
	}
	p.onClose("store-gateway block store", store.Close)
	gw, err := storegateway.New(p.cfg.storeGateway, store, p.storage.enc, rr, logger, p.reg)
	if err != nil {
		return err
	}
	p.addLoop(gw.Run)
	p.checks = append(p.checks, func() string {
		if !rr.Active() {
			return "store-gateway is not ACTIVE in its ring yet"
		}
		if !gw.Synced() {
			return "store-gateway has not synced its blocks yet"
		}
		return ""
	})
	return p.grpcService(func(srv *grpc.Server) {
		rpc.RegisterStoreGateway(srv, gw, rpc.ServiceOptions{Ready: rr.Active})
	}, rr.Active)
}

// gatewaySource is the querier's source of shipped blocks in a cluster
// that shards them over store-gateways: the store-gateways, and the list
// of blocks (which the admin API's tenant deletion makes forget a tenant).
type gatewaySource struct {
	*querier.StoreGateways
	*blockstore.Lister
}

// storeGateways reads shipped blocks through the store-gateways of the
// ring, with a client pool of their own.
func (p *process) storeGateways() (*gatewaySource, error) {
	rr, err := p.storeGatewayRing()
	if err != nil {
		return nil, err
	}
	ctls, err := p.cfg.cluster.clientTLS()
	if err != nil {
		return nil, err
	}
	cred := p.member.cred
	factory := ringclient.PoolAddrFunc(func(addr string) (ringclient.PoolClient, error) {
		return rpc.DialStoreGateway(addr, cred, ctls)
	})
	pool := p.clientPool("store-gateway", rr.Ring(), factory)
	p.checks = append(p.checks, func() string {
		if _, err := rr.Ring().GetAllHealthy(cluster.BlocksRead); err != nil {
			return "no ACTIVE store-gateway in the ring yet: " + err.Error()
		}
		return ""
	})
	lister := blockstore.NewLister(p.storage.enc, p.cfg.store.SyncInterval)
	sg := querier.NewStoreGateways(lister, rr, func(addr string) (querier.StoreGatewayReader, error) {
		c, err := pool.GetClientFor(addr)
		if err != nil {
			return nil, err
		}
		return c.(*rpc.StoreGatewayClient), nil
	}, p.reg)
	return &gatewaySource{StoreGateways: sg, Lister: lister}, nil
}
