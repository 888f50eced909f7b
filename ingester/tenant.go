package ingester

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/fluxpulse/fluxpulse/limits"
)

// exemplarsMarker is the file whose presence says the tenant has sent
// exemplars, so its exemplar buffer is allocated on reopen and the exemplars
// in the WAL are replayed into it.
const exemplarsMarker = "exemplars-enabled"

// tenant is one tenant's storage on this ingester.
//
// Pushes, queries and background work hold the tenant (acquire, release)
// while they use db, so that neither a deletion nor the ingester's Close
// closes the TSDB under them: retire refuses new users and reports when the
// last one is gone, the way the block store's blocks count their readers.
type tenant struct {
	id       string
	dir      string
	opened   chan struct{} // closed once db is open or openErr is set
	openErr  error
	finished chan struct{} // closed once a retired tenant's TSDB is closed (and, when deleted, removed)

	useMu    sync.Mutex
	users    int
	retiring bool
	idle     chan struct{} // closed when retiring and users is 0

	db      *tsdb.DB
	meta    *metadataStore
	series  *seriesLimiter
	shipper *shipper
	refs    *refCache
	// deletions are the deletion requests applied, applied again before
	// every cut of the head.
	deletions *tenantDeletions
	share     SeriesShare

	lastPush  atomic.Int64 // unix nanoseconds of the last push (or the open)
	drainedAt time.Time    // since when an idle tenant is all shipped; the ship loop's own

	cfgMu        sync.Mutex // serialises db.ApplyConfig
	exemplarsOn  bool
	oooWindow    time.Duration
	maxExemplars int
}

func newTenant(id string) *tenant {
	return &tenant{id: id, opened: make(chan struct{}), finished: make(chan struct{}), idle: make(chan struct{})}
}

// acquire registers a user of the tenant's TSDB. It fails once the tenant is
// retired; every successful acquire is paired with one release.
func (t *tenant) acquire() bool {
	t.useMu.Lock()
	defer t.useMu.Unlock()
	if t.retiring {
		return false
	}
	t.users++
	return true
}

func (t *tenant) release() {
	t.useMu.Lock()
	defer t.useMu.Unlock()
	t.users--
	switch {
	case t.users < 0:
		panic("BUG: tenant released more often than acquired")
	case t.users == 0 && t.retiring:
		close(t.idle)
	}
}

// retire refuses new users. It returns a channel closed once the current
// users are done, and whether this call retired the tenant: only that
// caller closes the TSDB and then closes finished.
func (t *tenant) retire() (idle <-chan struct{}, owner bool) {
	t.useMu.Lock()
	defer t.useMu.Unlock()
	if t.retiring {
		return t.idle, false
	}
	t.retiring = true
	if t.users == 0 {
		close(t.idle)
	}
	return t.idle, true
}

func (t *tenant) openTSDB(cfg Config, ov *limits.Overrides, logger *slog.Logger) error {
	t.dir = filepath.Join(cfg.Dir, t.id)
	t.touch(time.Now())
	lim := ov.Limits(t.id)
	t.refs = newRefCache()
	t.series = newSeriesLimiter(t.id, func() limits.Limits { return ov.Limits(t.id) })
	t.series.share = t.share
	t.series.onDelete = func(deleted int) { t.refs.seriesDeleted(deleted) }
	o := tsdbOptions(cfg, lim)
	o.SeriesLifecycleCallback = t.series
	o.BlocksToDelete = t.blocksToDelete(cfg.Retention)
	var err error
	if t.shipper, err = newShipper(t.dir); err != nil {
		return err
	}
	if t.deletions, err = loadDeletions(t.dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(t.dir, exemplarsMarker)); err == nil && lim.MaxExemplars > 0 {
		o.MaxExemplars = int64(lim.MaxExemplars)
		t.exemplarsOn = true
	}
	// Each tenant gets no registry: per-tenant copies of every TSDB metric
	// would swamp /metrics. The ingester exports per-tenant figures itself.
	db, err := tsdb.Open(t.dir, logger, nil, o, nil)
	if err != nil {
		return fmt.Errorf("open TSDB in %s: %w", t.dir, err)
	}
	t.db = db
	db.DisableCompactions()        // the shipper cuts blocks, then ships them
	t.series.enforcing.Store(true) // the WAL is replayed: limits apply from now on
	t.oooWindow = lim.OutOfOrderTimeWindow
	t.maxExemplars = int(o.MaxExemplars)
	t.meta = newMetadataStore(filepath.Join(t.dir, "metadata.json"))
	if err := t.meta.load(); err != nil {
		logger.Warn("metadata not restored", "err", err)
	}
	return nil
}

// applyLimits brings the TSDB in line with the tenant's current limits: the
// out-of-order window, and the exemplar buffer once exemplars arrive.
func (t *tenant) applyLimits(lim limits.Limits, wantExemplars bool) error {
	t.cfgMu.Lock()
	defer t.cfgMu.Unlock()
	maxEx := t.maxExemplars
	if wantExemplars || t.exemplarsOn {
		maxEx = lim.MaxExemplars
	}
	if lim.OutOfOrderTimeWindow == t.oooWindow && maxEx == t.maxExemplars {
		return nil
	}
	if maxEx > 0 && !t.exemplarsOn {
		if err := os.WriteFile(filepath.Join(t.dir, exemplarsMarker), nil, 0o640); err != nil {
			return fmt.Errorf("mark exemplars enabled: %w", err)
		}
		t.exemplarsOn = true
	}
	c := config.DefaultConfig
	c.StorageConfig.TSDBConfig = &config.TSDBConfig{OutOfOrderTimeWindow: lim.OutOfOrderTimeWindow.Milliseconds()}
	c.StorageConfig.ExemplarsConfig = &config.ExemplarsConfig{MaxExemplars: int64(maxEx)}
	if err := t.db.ApplyConfig(&c); err != nil {
		return fmt.Errorf("apply tenant limits to TSDB: %w", err)
	}
	t.oooWindow = lim.OutOfOrderTimeWindow
	t.maxExemplars = maxEx
	return nil
}

func (t *tenant) close() error {
	return errors.Join(t.meta.sync(), t.db.Close())
}

// tsdbOptions returns the options of a tenant's TSDB that depend only on the
// ingester's configuration and the tenant's limits.
func tsdbOptions(cfg Config, lim limits.Limits) *tsdb.Options {
	o := tsdb.DefaultOptions()
	// One TSDB per tenant: the head's fixed costs are paid per tenant, so
	// they are kept small. Prometheus's 16384 lock stripes and 4 MiB chunk
	// write buffer cost about 5 MiB a tenant; a few hundred stripes are
	// plenty for the concurrency of one tenant on an ingester.
	o.StripeSize = cfg.StripeSize
	o.HeadChunksWriteBufferSize = chunks.MinWriteBufferSize
	// Isolation lets a query skip samples of appends still in flight; it
	// costs a ring of append IDs per series and work on every append, and
	// remote write has no transactions for it to protect.
	o.IsolationDisabled = true
	o.MinBlockDuration = cfg.BlockRange.Milliseconds()
	o.MaxBlockDuration = cfg.BlockRange.Milliseconds()
	o.RetentionDuration = cfg.Retention.Milliseconds()
	if cfg.WALCompression {
		o.WALCompression = compression.Snappy
	}
	o.OutOfOrderTimeWindow = lim.OutOfOrderTimeWindow.Milliseconds()
	// Overlapping blocks (out-of-order data) and larger blocks are the
	// compactor's job, in the bucket; locally a block is deleted only once
	// shipped and past the local retention.
	o.EnableOverlappingCompaction = false
	// Always on, so that a tenant's first exemplar can be stored without
	// reopening its TSDB; the buffer itself is sized only once it has sent one.
	o.EnableExemplarStorage = true
	return o
}
