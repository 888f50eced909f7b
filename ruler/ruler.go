package ruler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/logthrottle"
)

// Config configures the ruler.
type Config struct {
	// EvaluationInterval is the interval of groups that set none.
	EvaluationInterval time.Duration
	// PollInterval is how often every tenant's rules are read again from
	// the bucket, to see changes made through other processes.
	PollInterval time.Duration
	// AlertmanagerURL is a comma-separated list of Alertmanager base URLs
	// (http://host:9093, or with a path prefix); every alert goes to each.
	// A tenant's ruler_alertmanager_url limit replaces it for that tenant.
	AlertmanagerURL    string
	AlertmanagerClient AlertmanagerClientConfig
	// NotificationQueueCapacity is the number of alerts queued per tenant
	// and Alertmanager; more are dropped and counted.
	NotificationQueueCapacity int
	NotificationTimeout       time.Duration
	// ExternalURL is the base of the generator URL of alerts and the value
	// of $externalURL in templates.
	ExternalURL string
	// ExternalLabels are added to every alert sent ("k=v,k2=v2").
	ExternalLabels string
	// ResendDelay is how long to wait before sending a firing alert again.
	ResendDelay time.Duration
	// OutageTolerance is how long an outage may last for alerts to keep
	// their for state across it (restored from ALERTS_FOR_STATE).
	OutageTolerance time.Duration
	// ForGracePeriod is the least time a restored alert still waits
	// before it fires.
	ForGracePeriod time.Duration
}

// AlertmanagerClientConfig authenticates the ruler to Alertmanager. Secrets
// are read from files on every request, so that they can be rotated and
// never appear in flags or logs. Credentials in an Alertmanager URL
// (http://user:password@host) take precedence for that URL.
type AlertmanagerClientConfig struct {
	BasicAuthUsername     string
	BasicAuthPasswordFile string
	BearerTokenFile       string
}

// Flag names used in error messages.
const (
	FlagAlertmanagerURL = "ruler.alertmanager-url"
	FlagExternalURL     = "ruler.external-url"
	FlagExternalLabels  = "ruler.external-labels"
)

// RegisterFlags registers the ruler's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "Evaluation interval of rule groups that set none.")
	fs.DurationVar(&c.PollInterval, "ruler.poll-interval", time.Minute, "How often rule groups are read again from object storage (changes made through this process apply at once).")
	fs.StringVar(&c.AlertmanagerURL, FlagAlertmanagerURL, "", "Comma-separated Alertmanager URLs alerts are sent to (http://host:9093[/prefix]); a tenant's ruler_alertmanager_url replaces it. Empty: each tenant's alerts go to its own Alertmanager in FluxPulse (in process, or -ruler.multitenant-alertmanager-url with roles apart); without one they are evaluated but not sent.")
	fs.StringVar(&c.AlertmanagerClient.BasicAuthUsername, "ruler.alertmanager-client.basic-auth-username", "", "Basic-auth user name for Alertmanager.")
	fs.StringVar(&c.AlertmanagerClient.BasicAuthPasswordFile, "ruler.alertmanager-client.basic-auth-password-file", "", "File holding the basic-auth password for Alertmanager, read on every request.")
	fs.StringVar(&c.AlertmanagerClient.BearerTokenFile, "ruler.alertmanager-client.bearer-token-file", "", "File holding a bearer token for Alertmanager, read on every request.")
	fs.IntVar(&c.NotificationQueueCapacity, "ruler.notification-queue-capacity", 10000, "Alerts queued per tenant and Alertmanager before new ones are dropped.")
	fs.DurationVar(&c.NotificationTimeout, "ruler.notification-timeout", 10*time.Second, "Timeout of one request to Alertmanager.")
	fs.StringVar(&c.ExternalURL, FlagExternalURL, "", "URL under which users reach FluxPulse's query UI (Grafana, say): the base of alerts' generator URLs and $externalURL in templates.")
	fs.StringVar(&c.ExternalLabels, FlagExternalLabels, "", "Labels added to every alert sent to Alertmanager, as name=value,name2=value2.")
	fs.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "How long to wait before sending a still-firing alert to Alertmanager again.")
	fs.DurationVar(&c.OutageTolerance, "ruler.for-outage-tolerance", time.Hour, "Longest ruler outage after which pending and firing alerts keep their for state (restored from ALERTS_FOR_STATE).")
	fs.DurationVar(&c.ForGracePeriod, "ruler.for-grace-period", 10*time.Minute, "Least time a restored alert waits before firing; alerts whose for is shorter restart their for after a restart.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.EvaluationInterval <= 0 || c.PollInterval <= 0 || c.NotificationTimeout <= 0 {
		return errors.New("-ruler.evaluation-interval, -ruler.poll-interval and -ruler.notification-timeout must be positive")
	}
	if c.ResendDelay < 0 || c.OutageTolerance < 0 || c.ForGracePeriod < 0 || c.NotificationQueueCapacity <= 0 {
		return errors.New("-ruler.resend-delay, -ruler.for-outage-tolerance and -ruler.for-grace-period must not be negative, -ruler.notification-queue-capacity must be positive")
	}
	if c.AlertmanagerClient.BasicAuthPasswordFile != "" && c.AlertmanagerClient.BearerTokenFile != "" {
		return errors.New("-ruler.alertmanager-client.basic-auth-password-file and -ruler.alertmanager-client.bearer-token-file exclude each other")
	}
	if _, err := parseAlertmanagerURLs(c.AlertmanagerURL); err != nil {
		return fmt.Errorf("-%s: %w", FlagAlertmanagerURL, err)
	}
	if _, err := url.Parse(c.ExternalURL); err != nil {
		return fmt.Errorf("-%s: %w", FlagExternalURL, err)
	}
	if _, err := parseExternalLabels(c.ExternalLabels); err != nil {
		return fmt.Errorf("-%s: %w", FlagExternalLabels, err)
	}
	return nil
}

// parseExternalLabels parses "k=v,k2=v2".
func parseExternalLabels(s string) (labels.Labels, error) {
	b := labels.NewBuilder(labels.EmptyLabels())
	for kv := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel || v == "" {
			return labels.EmptyLabels(), fmt.Errorf("%q is not name=value with a valid label name and a value", kv)
		}
		b.Set(k, v)
	}
	return b.Labels(), nil
}

// Limits returns a tenant's limits (*limits.Overrides).
type Limits interface {
	Limits(tenant string) limits.Limits
}

// Auditor records rules changes (*audit.Logger). It must not block for
// long and must be safe for concurrent use.
type Auditor interface {
	Log(e audit.Entry)
}

// Dependencies are what the ruler works with.
type Dependencies struct {
	// Engine evaluates rules; it is shared with the query API.
	Engine promql.QueryEngine
	// Queryable is the tenant-aware storage the API queries: it learns the
	// tenant from the context, which the ruler sets for each tenant.
	Queryable storage.Queryable
	// Pusher stores rule results (the distributor).
	Pusher Pusher
	// Bucket holds the rule groups; it must encrypt per tenant.
	Bucket bucket.Bucket
	Limits Limits
	// Audit records rules changes; nil records nothing.
	Audit Auditor
	// Alertmanager is FluxPulse's own, for tenants whose alerts no flag
	// or limit sends elsewhere; nil: such alerts are not sent.
	Alertmanager *Alertmanager
}

// Ruler runs every tenant's rules and serves the rules APIs.
type Ruler struct {
	cfg       Config
	deps      Dependencies
	store     store
	parser    parser.Parser
	extLabels labels.Labels
	extURL    *url.URL
	logger    *slog.Logger
	reg       prometheus.Registerer // for per-tenant metrics; nil for none
	writes    *writeMetrics
	logs      *logthrottle.Throttle
	m         rulerMetrics

	mu      sync.RWMutex
	tenants map[string]*tenant

	pendingMu sync.Mutex
	pending   map[string]bool // tenants to read again from the bucket
	moved     map[string]bool // tenants whose groups changed hands
	wake      chan struct{}

	own   *ownership // nil: this ruler evaluates every group (-target=all)
	peers Peers      // nil: no other rulers to ask
}

type rulerMetrics struct {
	syncs, syncFailures prometheus.Counter
	tenants             prometheus.Gauge
	quieted, restarts   prometheus.Counter
}

// New returns a ruler. It starts nothing: Run evaluates the rules.
func New(cfg Config, deps Dependencies, logger *slog.Logger, reg prometheus.Registerer) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Engine == nil || deps.Queryable == nil || deps.Pusher == nil || deps.Bucket == nil || deps.Limits == nil {
		return nil, errors.New("ruler: engine, queryable, pusher, bucket and limits are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ext, _ := parseExternalLabels(cfg.ExternalLabels)
	u, _ := url.Parse(cfg.ExternalURL)
	r := &Ruler{
		cfg: cfg, deps: deps, store: store{bkt: deps.Bucket}, parser: parser.NewParser(parser.Options{}),
		extLabels: ext, extURL: u, logger: logger, reg: reg, writes: newWriteMetrics(reg), logs: logthrottle.New(time.Minute),
		tenants: map[string]*tenant{}, pending: map[string]bool{}, moved: map[string]bool{}, wake: make(chan struct{}, 1),
		m: rulerMetrics{
			syncs:        prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_ruler_syncs_total", Help: "Reads of tenants' rule groups from object storage."}),
			syncFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_ruler_sync_failures_total", Help: "Reads of rule groups that failed; the tenant keeps the rules it had."}),
			tenants:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "fluxpulse_ruler_tenants", Help: "Tenants whose rules are being evaluated."}),
			quieted: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_ruler_handover_quieted_alerts_total",
				Help: "Firing alerts not sent to Alertmanager because the ruler that evaluated their group before may have sent them less than a resend delay ago."}),
			restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_ruler_manager_restarts_total",
				Help: "Tenants' rules managers replaced because some of their groups moved to another ruler."}),
		},
	}
	if reg != nil {
		reg.MustRegister(r.m.syncs, r.m.syncFailures, r.m.tenants, r.m.quieted, r.m.restarts)
		r.reg = prometheus.WrapRegistererWithPrefix("fluxpulse_ruler_", reg)
	}
	return r, nil
}

// Run reads every tenant's rules, evaluates them and keeps them in step
// with the bucket until ctx ends; then it stops every tenant's rules and
// notifications.
func (r *Ruler) Run(ctx context.Context) error {
	if r.own != nil {
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { r.own.watch(wctx, r.cfg.ResendDelay, r.notifyMoved) })
		defer wg.Wait()
		defer cancel()
	}
	r.syncAll(ctx)
	tick := time.NewTicker(r.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stopAll()
			return nil
		case <-tick.C:
			r.syncAll(ctx)
		case <-r.wake:
			r.pendingMu.Lock()
			ids := make([]string, 0, len(r.pending))
			for id := range r.pending {
				ids = append(ids, id)
			}
			clear(r.pending)
			moved := make([]string, 0, len(r.moved))
			for id := range r.moved {
				moved = append(moved, id)
			}
			clear(r.moved)
			r.pendingMu.Unlock()
			slices.Sort(ids)
			for _, id := range ids {
				r.syncTenant(ctx, id)
			}
			for _, id := range moved {
				if t := r.tenant(id); t != nil {
					r.applyGroups(t, t.stored)
				}
			}
		}
	}
}

// notifyChange asks Run to read a tenant's rules again now.
func (r *Ruler) notifyChange(tenant string) { r.wakeFor(r.pending, tenant) }

// notifyMoved asks Run to apply a tenant's groups again: some changed
// hands on the ring.
func (r *Ruler) notifyMoved(tenant string) { r.wakeFor(r.moved, tenant) }

// wakeFor adds tenant to set (pending or moved) and wakes Run.
func (r *Ruler) wakeFor(set map[string]bool, tenant string) {
	r.pendingMu.Lock()
	set[tenant] = true
	r.pendingMu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// syncAll reads the rules of every tenant that has some, and stops the
// tenants that have none left.
func (r *Ruler) syncAll(ctx context.Context) {
	ids, err := r.store.tenants(ctx)
	if err != nil {
		r.m.syncFailures.Inc()
		r.logger.Error("list tenants with rules; keeping the rules loaded", "err", err)
		return
	}
	for _, id := range ids {
		r.syncTenant(ctx, id)
	}
	r.mu.RLock()
	var gone []string
	for id := range r.tenants {
		if !slices.Contains(ids, id) {
			gone = append(gone, id)
		}
	}
	r.mu.RUnlock()
	for _, id := range gone {
		r.removeTenant(id)
	}
}

// syncTenant reads one tenant's groups and applies them.
func (r *Ruler) syncTenant(ctx context.Context, id string) {
	if ctx.Err() != nil {
		return
	}
	r.m.syncs.Inc()
	stored, err := r.store.load(ctx, id, "")
	if err != nil {
		r.m.syncFailures.Inc()
		r.logger.Error("read rule groups; keeping the rules loaded", "tenant", id, "err", err)
		return
	}
	if r.own != nil {
		r.own.setKnown(id, stored)
	}
	if len(stored) == 0 {
		r.removeTenant(id)
		return
	}
	r.mu.RLock()
	t := r.tenants[id]
	r.mu.RUnlock()
	if t == nil {
		t = r.newTenant(ctx, id)
		r.mu.Lock()
		r.tenants[id] = t
		r.m.tenants.Set(float64(len(r.tenants)))
		r.mu.Unlock()
	}
	r.applyNotifier(t)
	r.applyGroups(t, stored)
}

// removeTenant stops a tenant's rules, then forgets it: the API shows its
// rules until they have stopped.
func (r *Ruler) removeTenant(id string) {
	t := r.tenant(id)
	if t == nil {
		return
	}
	r.logger.Info("tenant has no rules left; stopping its evaluation", "tenant", id)
	if r.own != nil {
		r.own.setKnown(id, nil)
	}
	r.stopTenant(t)
	r.mu.Lock()
	delete(r.tenants, id)
	r.m.tenants.Set(float64(len(r.tenants)))
	r.mu.Unlock()
}

func (r *Ruler) stopAll() {
	r.mu.Lock()
	ts := r.tenants
	r.tenants = map[string]*tenant{}
	r.m.tenants.Set(0)
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Go(func() { r.stopTenant(t) })
	}
	wg.Wait()
}

// tenant returns the tenant's running rules, or nil.
func (r *Ruler) tenant(id string) *tenant {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.tenants[id]
}

// audit records a rules change.
func (r *Ruler) audit(e audit.Entry) {
	if r.deps.Audit == nil {
		return
	}
	e.Action = audit.ActionRulesChange
	r.deps.Audit.Log(e)
}
