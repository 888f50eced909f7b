package ingester

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Config configures the ingester.
type Config struct {
	// Dir holds one TSDB directory per tenant.
	Dir             string
	BlockRange      time.Duration
	Retention       time.Duration
	MaxTenants      int
	WALCompression  bool
	ReopenParallel  int
	MetadataSyncDur time.Duration
	ShipInterval    time.Duration
	FlushOnShutdown bool
	StripeSize      int
	// CloseIdleTimeout closes the TSDB of a tenant without pushes for this
	// long, once its data is shipped (0: never); IdleCloseGrace is how long
	// its last block must have been in the bucket first (set by the caller
	// from the queriers' block sync interval).
	CloseIdleTimeout time.Duration
	IdleCloseGrace   time.Duration
}

// RegisterFlags registers the ingester's flags. Dir is set by the caller from
// -data.dir.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.BlockRange, "ingester.block-range", 2*time.Hour, "Time range of the TSDB blocks the ingester cuts from its head.")
	fs.DurationVar(&c.Retention, "ingester.retention-period", 12*time.Hour, "How long the ingester keeps blocks on local disk after shipping them to the bucket; unshipped blocks are never deleted.")
	fs.DurationVar(&c.ShipInterval, "ingester.ship-interval", 30*time.Second, "How often the ingester cuts the blocks its heads are ready for and ships new blocks to the bucket.")
	fs.IntVar(&c.StripeSize, "ingester.tsdb-stripe-size", 64, "Lock stripes of each tenant's TSDB head, a power of two: more allow more concurrent appends to one tenant, each costs about 300 bytes per tenant.")
	fs.BoolVar(&c.FlushOnShutdown, "ingester.flush-on-shutdown", false, "On shutdown, cut every head into blocks and ship them, so that an ingester scaled down loses nothing.")
	fs.DurationVar(&c.CloseIdleTimeout, "ingester.close-idle-tsdb-timeout", 13*time.Hour, "Close the TSDB of a tenant that sent nothing for this long, once its head is cut into blocks and shipped, and remove it from local disk; its next push opens it again. Queries read its data from the bucket meanwhile. 0 never closes them.")
	fs.IntVar(&c.MaxTenants, "ingester.max-tenants", 10000, "Maximum number of tenants one ingester holds open; pushes for further tenants are refused with 503.")
	fs.BoolVar(&c.WALCompression, "ingester.wal-compression", true, "Compress the write-ahead log with snappy.")
	fs.IntVar(&c.ReopenParallel, "ingester.reopen-concurrency", runtime.GOMAXPROCS(0), "How many tenant TSDBs are reopened (WAL replayed) at once on start.")
	fs.DurationVar(&c.MetadataSyncDur, "ingester.metadata-sync-interval", time.Minute, "How often changed metric metadata is written to disk.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("ingester directory is not set")
	}
	if c.BlockRange < time.Minute {
		return fmt.Errorf("-ingester.block-range must be at least 1m, got %s", c.BlockRange)
	}
	if c.Retention < c.BlockRange {
		return fmt.Errorf("-ingester.retention-period (%s) must be at least -ingester.block-range (%s)", c.Retention, c.BlockRange)
	}
	if c.StripeSize <= 0 || c.StripeSize&(c.StripeSize-1) != 0 {
		return fmt.Errorf("-ingester.tsdb-stripe-size must be a power of two, got %d", c.StripeSize)
	}
	if c.ShipInterval <= 0 {
		return fmt.Errorf("-ingester.ship-interval must be positive, got %s", c.ShipInterval)
	}
	if c.MaxTenants <= 0 {
		return fmt.Errorf("-ingester.max-tenants must be positive, got %d", c.MaxTenants)
	}
	return nil
}

// Errors the ingester returns. Both match remotewrite.ErrUnavailable, by
// which the distributor answers them with 503.
var (
	// ErrTooManyTenants means the ingester holds -ingester.max-tenants
	// tenants already. Retryable: another ingester may take the tenant.
	ErrTooManyTenants = remotewrite.NewError(remotewrite.ErrUnavailable, "too many tenants on this ingester")
	// ErrClosed means the ingester is shutting down. Retryable.
	ErrClosed = remotewrite.NewError(remotewrite.ErrUnavailable, "ingester is shutting down")
)

// Ingester keeps one Prometheus TSDB per tenant.
type Ingester struct {
	cfg    Config
	limits *limits.Overrides
	bkt    bucket.Bucket // nil: blocks are not shipped
	logger *slog.Logger

	mu      sync.RWMutex
	tenants map[string]*tenant
	closed  bool
	ready   atomic.Bool
	orders  orderPool   // per-push tables of what was appended, see order.go
	share   SeriesShare // nil: this ingester holds every series of its tenants

	m metrics
}

type metrics struct {
	tenants         prometheus.Gauge
	appended        *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	exemplarsStored *prometheus.CounterVec
	walReplay       prometheus.Histogram
	shipped         *prometheus.CounterVec
	shipFailures    *prometheus.CounterVec
	idleClosed      prometheus.Counter
}

// New returns an Ingester that ships its blocks to bkt (nil: keep them
// local). It starts nothing: Run reopens the tenants found on disk.
func New(cfg Config, lim *limits.Overrides, bkt bucket.Bucket, logger *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create ingester directory: %w", err)
	}
	f := promauto.With(reg)
	i := &Ingester{
		cfg:     cfg,
		limits:  lim,
		bkt:     bkt,
		logger:  logger,
		tenants: map[string]*tenant{},
		m: metrics{
			tenants: f.NewGauge(prometheus.GaugeOpts{
				Name: "fluxpulse_ingester_tenants", Help: "Tenants with an open TSDB on this ingester."}),
			appended: f.NewCounterVec(prometheus.CounterOpts{
				Name: "fluxpulse_ingester_samples_appended_total", Help: "Samples (floats and histograms) stored per tenant."}, []string{"tenant"}),
			rejected: f.NewCounterVec(prometheus.CounterOpts{
				Name: "fluxpulse_ingester_samples_rejected_total", Help: "Samples refused by the TSDB per tenant and reason."}, []string{"tenant", "reason"}),
			exemplarsStored: f.NewCounterVec(prometheus.CounterOpts{
				Name: "fluxpulse_ingester_exemplars_appended_total", Help: "Exemplars stored per tenant."}, []string{"tenant"}),
			shipped: f.NewCounterVec(prometheus.CounterOpts{
				Name: "fluxpulse_ingester_shipped_blocks_total", Help: "Blocks uploaded to the bucket per tenant."}, []string{"tenant"}),
			shipFailures: f.NewCounterVec(prometheus.CounterOpts{
				Name: "fluxpulse_ingester_ship_failures_total", Help: "Failed attempts to cut or ship a tenant's blocks."}, []string{"tenant"}),
			idleClosed: f.NewCounter(prometheus.CounterOpts{
				Name: "fluxpulse_ingester_idle_tsdbs_closed_total", Help: "Tenant TSDBs closed and removed from local disk after -ingester.close-idle-tsdb-timeout without pushes."}),
			walReplay: f.NewHistogram(prometheus.HistogramOpts{
				Name: "fluxpulse_ingester_tsdb_open_duration_seconds", Help: "Time to open a tenant's TSDB, WAL replay included.",
				Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
		},
	}
	if reg != nil {
		reg.MustRegister(&seriesCollector{i: i})
	}
	return i, nil
}

// SeriesShare tells how a tenant's series are spread when ingesters run
// apart: each series is on replicas of the ingesters (of the tenant's
// shuffle shard, if it has one).
type SeriesShare func(tenant string) (replicas, ingesters int)

// SetSeriesShare makes the tenants' max_series a limit across the cluster,
// of which this ingester enforces its share (replicas/ingesters of it, as
// Mimir does). Call it before Run.
func (i *Ingester) SetSeriesShare(f SeriesShare) { i.share = f }

// Ready reports whether every tenant found on disk has been reopened.
func (i *Ingester) Ready() bool { return i.ready.Load() }

// Run reopens every tenant TSDB found on disk, in parallel, then writes
// changed metadata to disk periodically until ctx ends.
func (i *Ingester) Run(ctx context.Context) error {
	if err := i.reopenAll(ctx); err != nil {
		return err
	}
	i.ready.Store(true)
	meta := time.NewTicker(i.cfg.MetadataSyncDur)
	defer meta.Stop()
	ship := time.NewTicker(i.cfg.ShipInterval)
	defer ship.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-meta.C:
			i.eachTenant(func(tn *tenant) {
				if err := tn.meta.sync(); err != nil {
					i.logger.Warn("write metadata", "tenant", tn.id, "err", err)
				}
			})
		case <-ship.C:
			i.shipAll(ctx)
			i.closeIdle(ctx, time.Now())
		}
	}
}

// shipAll cuts and ships the blocks of every open tenant.
func (i *Ingester) shipAll(ctx context.Context) {
	i.eachTenant(func(tn *tenant) {
		if ctx.Err() == nil {
			i.shipTenant(ctx, tn)
		}
	})
}

func (i *Ingester) shipTenant(ctx context.Context, tn *tenant) {
	if i.bkt == nil {
		if err := tn.cut(ctx); err != nil {
			i.logger.Warn("cut blocks", "tenant", tn.id, "err", err)
		}
		return
	}
	n, err := tn.ship(ctx, i.bkt)
	if n > 0 {
		i.m.shipped.WithLabelValues(tn.id).Add(float64(n))
	}
	if err != nil && ctx.Err() == nil {
		i.m.shipFailures.WithLabelValues(tn.id).Inc()
		i.logger.Warn("shipping blocks failed, will retry", "tenant", tn.id, "err", err)
	}
}

func (i *Ingester) reopenAll(ctx context.Context) error {
	entries, err := os.ReadDir(i.cfg.Dir)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	start := time.Now()
	sem := make(chan struct{}, max(1, i.cfg.ReopenParallel))
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(entries))
		n    int
	)
	for k, e := range entries {
		if !e.IsDir() {
			continue
		}
		if err := tenantauth.ValidateID(e.Name()); err != nil {
			i.logger.Warn("ignoring directory that is not a tenant", "dir", e.Name(), "err", err)
			continue
		}
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			t, err := i.tenant(ctx, e.Name(), true)
			if err != nil {
				errs[k] = fmt.Errorf("reopen tenant %q: %w", e.Name(), err)
				return
			}
			t.release()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	i.logger.Info("reopened tenants", "tenants", n, "duration", time.Since(start))
	return nil
}

// Flush cuts the tenant's whole head into blocks and ships them now, as
// -ingester.flush-on-shutdown does at shutdown and idle tenants get.
func (i *Ingester) Flush(tenantID string) error {
	t, err := i.tenant(context.Background(), tenantID, false)
	if err != nil || t == nil {
		return err
	}
	defer t.release()
	return i.flush(t)
}

// flush cuts the tenant's head into blocks and ships every unshipped block.
func (i *Ingester) flush(t *tenant) error {
	if err := t.flushHead(i.cfg.BlockRange); err != nil {
		return err
	}
	if i.bkt == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n, err := t.ship(ctx, i.bkt)
	i.logger.Info("cut the head into blocks and shipped them", "tenant", t.id, "blocks_shipped", n)
	return err
}

// ActiveSeries returns the series in each open tenant's head.
func (i *Ingester) ActiveSeries() map[string]int64 {
	out := map[string]int64{}
	i.eachTenant(func(t *tenant) { out[t.id] = int64(t.db.Head().NumSeries()) })
	return out
}

// seriesCollector reports the active series of each open tenant.
type seriesCollector struct{ i *Ingester }

var (
	activeSeriesDesc = prometheus.NewDesc("fluxpulse_ingester_active_series",
		"Series in the TSDB head of each tenant.", []string{"tenant"}, nil)
	unshippedDesc = prometheus.NewDesc("fluxpulse_ingester_unshipped_blocks",
		"Local blocks of each tenant not shipped to the bucket yet.", []string{"tenant"}, nil)
	shipLagDesc = prometheus.NewDesc("fluxpulse_ingester_shipping_lag_seconds",
		"Age of each tenant's oldest local block not shipped yet; 0 when all are shipped.", []string{"tenant"}, nil)
)

func (c *seriesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeSeriesDesc
	ch <- unshippedDesc
	ch <- shipLagDesc
}

func (c *seriesCollector) Collect(ch chan<- prometheus.Metric) {
	c.i.eachTenant(func(t *tenant) {
		ch <- prometheus.MustNewConstMetric(activeSeriesDesc, prometheus.GaugeValue, float64(t.db.Head().NumSeries()), t.id)
		n, lag := t.unshipped()
		ch <- prometheus.MustNewConstMetric(unshippedDesc, prometheus.GaugeValue, float64(n), t.id)
		ch <- prometheus.MustNewConstMetric(shipLagDesc, prometheus.GaugeValue, lag.Seconds(), t.id)
	})
}
