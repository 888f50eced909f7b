package storegateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/cluster"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// RingPrefix is the prefix of the store-gateway ring's flags, Mimir's.
const RingPrefix = "store-gateway.sharding-ring"

// Config configures the store-gateways and how queriers use them.
type Config struct {
	// ShardingEnabled: queriers and rulers read shipped blocks through
	// the store-gateways, and each store-gateway loads only its share.
	ShardingEnabled bool
	Ring            cluster.RoleRingConfig
	// SyncInterval is set by the caller, from -blocks-storage.sync-interval.
	SyncInterval time.Duration
}

// RegisterFlags registers the store-gateway flags (Cortex's and Mimir's
// names).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.ShardingEnabled, "store-gateway.sharding-enabled", false, "Shard shipped blocks over the store-gateways of the store-gateway ring: queriers and rulers read blocks through them instead of downloading indexes themselves. Set it on every process of a cluster that runs store-gateways (-target=all ignores it).")
	c.Ring.RegisterFlagsWithPrefix(fs, RingPrefix, "store-gateway", 3)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.SyncInterval <= 0 {
		return fmt.Errorf("-blocks-storage.sync-interval must be positive, got %s", c.SyncInterval)
	}
	return nil
}

// Owner tells whether this store-gateway owns a block.
type Owner interface {
	OwnsBlock(id ulid.ULID) bool
}

// Gateway is one store-gateway.
type Gateway struct {
	cfg    Config
	store  *blockstore.Store
	bkt    bucket.Reader
	logger *slog.Logger
	synced atomic.Bool

	syncFailures prometheus.Counter
}

// New returns the store-gateway over store (which it restricts to the
// blocks owner says are its own; without sharding it owns every block) and
// bkt, the encrypting bucket the store reads.
func New(cfg Config, store *blockstore.Store, bkt bucket.Reader, owner Owner, logger *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	owns := func(string, ulid.ULID) bool { return true }
	if cfg.ShardingEnabled {
		owns = func(_ string, id ulid.ULID) bool { return owner.OwnsBlock(id) }
	}
	store.Shard(owns)
	return &Gateway{cfg: cfg, store: store, bkt: bkt, logger: logger,
		syncFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "fluxpulse_store_gateway_sync_failures_total",
			Help: "Tenants whose blocks a store-gateway failed to sync in its periodic sync."}),
	}, nil
}

var _ interface {
	BlocksQuerier(context.Context, string, []ulid.ULID, int64, int64) (storage.Querier, []ulid.ULID, error)
	BlocksChunkQuerier(context.Context, string, []ulid.ULID, int64, int64) (storage.ChunkQuerier, []ulid.ULID, error)
} = (*Gateway)(nil)

// Synced reports whether the first sync of every tenant ended.
func (g *Gateway) Synced() bool { return g.synced.Load() }

// Run syncs every tenant's blocks now and then every sync interval, until
// ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	tick := time.NewTicker(g.cfg.SyncInterval)
	defer tick.Stop()
	for {
		g.syncAll(ctx)
		g.synced.Store(true)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// syncAll syncs every tenant of the bucket; a tenant that fails is logged
// and synced again at the next pass (or by the next query naming a block).
func (g *Gateway) syncAll(ctx context.Context) {
	tenants, err := tenantauth.InBucket(ctx, g.bkt)
	if err != nil {
		if ctx.Err() == nil {
			g.logger.Warn("list tenants", "err", err)
		}
		return
	}
	for _, t := range tenants {
		if err := g.store.Sync(ctx, t); err != nil && !errors.Is(err, context.Canceled) {
			g.syncFailures.Inc()
			g.logger.Warn("sync blocks", "tenant", t, "err", err)
		}
	}
}

// BlocksQuerier implements rpc.StoreGateway.
func (g *Gateway) BlocksQuerier(ctx context.Context, tenant string, ids []ulid.ULID, mint, maxt int64) (storage.Querier, []ulid.ULID, error) {
	return g.store.BlocksQuerier(ctx, tenant, ids, mint, maxt)
}

// BlocksChunkQuerier implements rpc.StoreGateway.
func (g *Gateway) BlocksChunkQuerier(ctx context.Context, tenant string, ids []ulid.ULID, mint, maxt int64) (storage.ChunkQuerier, []ulid.ULID, error) {
	return g.store.BlocksChunkQuerier(ctx, tenant, ids, mint, maxt)
}
