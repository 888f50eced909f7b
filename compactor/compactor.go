// Package compactor keeps each tenant's blocks in the bucket few and large:
// it merges overlapping blocks (vertical compaction: copies of the same
// samples collapse to one) and adjacent blocks into larger ranges (by
// default 2h → 12h → 24h), applies retention, marks replaced blocks for
// deletion and deletes them once no query can still be reading them. It
// also removes the objects of tenants whose keys were deleted.
//
// Every block is downloaded, compacted locally with the Prometheus TSDB
// compactor and uploaded again, meta.json last; the upload goes through the
// tenant's encryption, so compaction also re-encrypts old data under the
// tenant's newest data key.
package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Config configures the compactor.
type Config struct {
	// Dir is scratch space for blocks being compacted.
	Dir           string
	Interval      time.Duration
	Ranges        rangesFlag
	DeletionDelay time.Duration
}

type rangesFlag []time.Duration

func (r *rangesFlag) String() string {
	var s []string
	for _, d := range *r {
		s = append(s, d.String())
	}
	return strings.Join(s, ",")
}

func (r *rangesFlag) Set(v string) error {
	var out rangesFlag
	for _, p := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	*r = out
	return nil
}

// RegisterFlags registers the compactor's flags. Dir is set by the caller.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Ranges = rangesFlag{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	fs.Var(&c.Ranges, "compactor.block-ranges", "Block ranges, comma-separated and each a multiple of the one before; the first must equal -ingester.block-range.")
	fs.DurationVar(&c.Interval, "compactor.compaction-interval", 5*time.Minute, "How often each tenant's blocks are planned and compacted.")
	fs.DurationVar(&c.DeletionDelay, "compactor.deletion-delay", 15*time.Minute, "How long a replaced or expired block stays in the bucket after its deletion mark; must outlive the store's sync interval plus the longest query.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("compactor directory is not set")
	}
	if len(c.Ranges) == 0 {
		return errors.New("-compactor.block-ranges needs at least one range")
	}
	for i := 1; i < len(c.Ranges); i++ {
		if c.Ranges[i]%c.Ranges[i-1] != 0 {
			return fmt.Errorf("-compactor.block-ranges: %s is not a multiple of %s", c.Ranges[i], c.Ranges[i-1])
		}
	}
	if c.Interval <= 0 || c.DeletionDelay < 0 {
		return errors.New("-compactor.compaction-interval must be positive and -compactor.deletion-delay not negative")
	}
	return nil
}

// Compactor compacts every tenant's blocks.
type Compactor struct {
	cfg    Config
	raw    bucket.Bucket // for removing objects nobody can decrypt any more
	bkt    bucket.Bucket // encrypting
	keys   *encryption.Keyring
	limits *limits.Overrides
	logger *slog.Logger
	now    func() time.Time

	wake      chan struct{}
	deletions *Deletions        // nil: deletion requests are not carried out
	scan      *blockstore.Store // reads single blocks for deletions

	shard  Sharding // nil: every tenant, without leases (-target=all)
	leases *leases
	held   map[string]*heldLease // by tenant; only Run's goroutine uses it
	delay  time.Duration         // fault injection: DelayEachPass

	compactions      *prometheus.CounterVec
	leaseOutcomes    *prometheus.CounterVec
	deleted          prometheus.Counter
	backlog          prometheus.Gauge
	failures         prometheus.Counter
	deletionRewrites prometheus.Counter
}

// New returns a Compactor.
func New(cfg Config, raw, bkt bucket.Bucket, keys *encryption.Keyring, lim *limits.Overrides, logger *slog.Logger, reg prometheus.Registerer) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Compactor{cfg: cfg, raw: raw, bkt: bkt, keys: keys, limits: lim, logger: logger, now: time.Now, wake: make(chan struct{}, 1),
		compactions: f.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_compactor_compactions_total",
			Help: "Compactions done, by kind: vertical (overlapping blocks) or level (adjacent blocks)."}, []string{"kind"}),
		leaseOutcomes: f.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_compactor_tenant_leases_total",
			Help: "Tenant passes of a sharded compactor by what became of the tenant's lease: taken, held (by another compactor; skipped this pass) or lost (the pass stopped)."}, []string{"outcome"}),
		deleted: f.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_compactor_blocks_deleted_total",
			Help: "Blocks deleted from the bucket after their deletion delay."}),
		backlog: f.NewGauge(prometheus.GaugeOpts{Name: "fluxpulse_compactor_backlog",
			Help: "Compactions planned but not done at the end of the last pass over all tenants."}),
		failures: f.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_compactor_failures_total",
			Help: "Tenant passes that ended with an error."}),
		deletionRewrites: f.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_compactor_deletion_rewrites_total",
			Help: "Blocks rewritten without the samples of deletion requests."}),
	}, nil
}

// Run compacts every interval until ctx ends.
func (c *Compactor) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	defer c.releaseLeases(nil)
	for {
		c.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.wake:
		}
	}
}

// RunOnce makes one pass over every tenant in the bucket.
func (c *Compactor) RunOnce(ctx context.Context) {
	tenants, err := c.tenants(ctx)
	if err != nil {
		c.logger.Warn("list tenants", "err", err)
		return
	}
	c.releaseLeases(tenants)
	backlog := 0
	for _, t := range tenants {
		if ctx.Err() != nil {
			return
		}
		left, err := c.passTenant(ctx, t)
		backlog += left
		if err != nil && ctx.Err() == nil {
			c.failures.Inc()
			c.logger.Warn("compaction pass failed", "tenant", t, "err", err)
		}
	}
	c.backlog.Set(float64(backlog))
}

func (c *Compactor) tenants(ctx context.Context) ([]string, error) {
	return tenantauth.InBucket(ctx, c.raw)
}

// maxPerPass bounds the compactions of one tenant in one pass, so that one
// tenant's backlog does not starve the others.
const maxPerPass = 8

// CompactTenant makes one pass over a tenant: removes what its deleted keys
// left behind, deletes blocks whose deletion delay passed, applies
// retention and runs up to maxPerPass compactions. It returns how many
// planned compactions it left for later.
func (c *Compactor) CompactTenant(ctx context.Context, tenant string) (int, error) {
	passStart := c.now()
	if shredded, err := c.removeShredded(ctx, tenant); err != nil || shredded {
		return 0, err
	}
	metas, marked, err := blockstore.ListBlocks(ctx, c.bkt, tenant)
	if err != nil {
		return 0, err
	}
	live := make([]tsdb.BlockMeta, 0, len(metas))
	var waiting []tsdb.BlockMeta // marked, not deleted yet
	for _, m := range metas {
		if marked[m.ULID] {
			deleted, err := c.deleteIfDue(ctx, tenant, m.ULID)
			if err != nil {
				return 0, err
			}
			if !deleted {
				waiting = append(waiting, m)
			}
			continue
		}
		live = append(live, m)
	}
	live, expired, err := c.applyRetention(ctx, tenant, live)
	if err != nil {
		return 0, err
	}
	waiting = append(waiting, expired...)
	if live, err = c.processDeletions(ctx, tenant, live, waiting, passStart); err != nil {
		return 0, fmt.Errorf("deletion requests: %w", err)
	}
	slices.SortFunc(live, func(a, b tsdb.BlockMeta) int { return int(a.MinTime - b.MinTime) })
	for done := 0; ; done++ {
		group, kind := c.plan(live)
		if group == nil {
			return 0, nil
		}
		if done == maxPerPass {
			return 1, nil
		}
		if !c.stillOwned(tenant) {
			return 1, nil
		}
		out, err := c.compact(ctx, tenant, group)
		if err != nil {
			return 1, fmt.Errorf("compact %d blocks: %w", len(group), err)
		}
		c.compactions.WithLabelValues(kind).Inc()
		live = slices.DeleteFunc(live, func(m tsdb.BlockMeta) bool {
			return slices.ContainsFunc(group, func(g tsdb.BlockMeta) bool { return g.ULID == m.ULID })
		})
		live = append(live, out...)
		slices.SortFunc(live, func(a, b tsdb.BlockMeta) int { return int(a.MinTime - b.MinTime) })
	}
}

// deletionMark is the content of a block's deletion-mark.json.
type deletionMark struct {
	ID           ulid.ULID `json:"id"`
	DeletionTime int64     `json:"deletion_time"`
	Reason       string    `json:"reason"`
	Version      int       `json:"version"`
}

func (c *Compactor) markForDeletion(ctx context.Context, tenant string, id ulid.ULID, reason string) error {
	b, err := json.Marshal(deletionMark{ID: id, DeletionTime: c.now().Unix(), Reason: reason, Version: 1})
	if err != nil {
		return err
	}
	return c.bkt.Upload(ctx, path.Join(blockstore.BlockDir(tenant, id), blockstore.DeletionMarkFile), strings.NewReader(string(b)))
}

// deleteIfDue deletes a marked block once its deletion delay has passed:
// its mark last, so that an interrupted deletion is finished next time.
// It reports whether it deleted the block.
func (c *Compactor) deleteIfDue(ctx context.Context, tenant string, id ulid.ULID) (bool, error) {
	dir := blockstore.BlockDir(tenant, id)
	r, err := c.bkt.Get(ctx, path.Join(dir, blockstore.DeletionMarkFile))
	if err != nil {
		return false, err
	}
	var m deletionMark
	err = json.NewDecoder(r).Decode(&m)
	r.Close()
	if err != nil {
		return false, fmt.Errorf("decode deletion mark of %s: %w", id, err)
	}
	if c.now().Sub(time.Unix(m.DeletionTime, 0)) < c.cfg.DeletionDelay {
		return false, nil
	}
	if err := deleteBlock(ctx, c.raw, dir); err != nil {
		return false, err
	}
	c.deleted.Inc()
	return true, nil
}

// deleteBlock deletes every object of a block directory, meta.json and the
// deletion mark last.
func deleteBlock(ctx context.Context, bkt bucket.Bucket, dir string) error {
	var last []string
	err := bkt.Iter(ctx, dir, bucket.IterOptions{Recursive: true}, func(name string) error {
		if base := path.Base(name); base == blockstore.MetaFile || base == blockstore.DeletionMarkFile {
			last = append(last, name)
			return nil
		}
		return bkt.Delete(ctx, name)
	})
	if err != nil {
		return err
	}
	slices.Sort(last) // deletion-mark.json sorts before meta.json: meta goes first
	slices.Reverse(last)
	for _, name := range last {
		if err := bkt.Delete(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// applyRetention marks the blocks entirely older than the tenant's
// retention and returns the others and the ones it marked.
func (c *Compactor) applyRetention(ctx context.Context, tenant string, metas []tsdb.BlockMeta) (kept, expired []tsdb.BlockMeta, err error) {
	ret := c.limits.Limits(tenant).CompactorBlocksRetentionPeriod
	if ret <= 0 {
		return metas, nil, nil
	}
	cutoff := c.now().Add(-ret).UnixMilli()
	for _, m := range metas {
		if m.MaxTime <= cutoff {
			if err := c.markForDeletion(ctx, tenant, m.ULID, "retention"); err != nil {
				return nil, nil, err
			}
			expired = append(expired, m)
			continue
		}
		kept = append(kept, m)
	}
	return kept, expired, nil
}

// scratch returns an empty work directory for one compaction.
func (c *Compactor) scratch(tenant string) (string, error) {
	dir := filepath.Join(c.cfg.Dir, tenant)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o750)
}

// mergeFunc collapses identical samples of overlapping blocks into one.
var mergeFunc = storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)
