package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/matcher/compat"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
)

// Limits returns a tenant's limits (*limits.Overrides).
type Limits interface {
	Limits(tenant string) limits.Limits
}

// Auditor records configuration changes and silences (*audit.Logger). It
// must not block for long and must be safe for concurrent use.
type Auditor interface {
	Log(e audit.Entry)
}

// Dependencies are what the Alertmanager works with.
type Dependencies struct {
	// Bucket holds every tenant's configuration and state; it must
	// encrypt per tenant.
	Bucket bucket.Bucket
	Limits Limits
	// Audit records configuration changes and silences; nil records
	// nothing.
	Audit Auditor
	// Listeners are the addresses (host:port) this process listens on:
	// the firewall refuses notifications to them whatever the flags say.
	Listeners []string
}

// ErrShuttingDown is returned for requests that arrive while the
// Alertmanager stops.
var ErrShuttingDown = errors.New("the Alertmanager is shutting down")

// ErrTooManyTenants is wrapped by the error for a tenant that cannot get
// an Alertmanager because -alertmanager.max-tenants run already.
var ErrTooManyTenants = errors.New("too many tenants")

// Alertmanager runs one Alertmanager per tenant that has a configuration
// (or, with a fallback configuration, per tenant that uses it) and serves
// their APIs.
type Alertmanager struct {
	cfg       Config
	deps      Dependencies
	store     store
	fw        *firewall
	flags     featurecontrol.Flagger
	fallback  string // the fallback configuration's text, "" for none
	logger    *slog.Logger
	tenantReg prometheus.Registerer // wraps every tenant's registry; nil for none
	m         *metrics

	mu      sync.RWMutex
	tenants map[string]*tenant

	syncMu  sync.Mutex // serializes starting, reloading and stopping tenants
	synced  atomic.Bool
	stopped atomic.Bool

	// absent are tenants found without a configuration, and when: their
	// requests (the ruler's alerts, every -ruler.resend-delay) do not read
	// the bucket again before the next poll would.
	absentMu sync.Mutex
	absent   map[string]time.Time
}

// initMatchers makes Alertmanager's matcher parsing what a stand-alone
// Alertmanager 0.35 does by default (UTF-8 with a fallback to the classic
// syntax). The package keeps that choice in globals; it is set once.
var initMatchers sync.Once

// New returns an Alertmanager. It starts nothing: Run starts the tenants'
// Alertmanagers.
func New(cfg Config, deps Dependencies, logger *slog.Logger, reg prometheus.Registerer) (*Alertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bucket == nil || deps.Limits == nil {
		return nil, errors.New("alertmanager: bucket and limits are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Receiver names in the notification metrics, so that only configured
	// integrations get series (not all 18 kinds for every tenant); nothing
	// else differs from a stand-alone Alertmanager's defaults. (NewFlags
	// would log the choice as an experiment the operator made.)
	flags, err := featurecontrol.NewFlags(slog.New(slog.DiscardHandler), featurecontrol.FeatureReceiverNameInMetrics)
	if err != nil {
		return nil, err
	}
	initMatchers.Do(func() { compat.InitFromFlags(logger, featurecontrol.NoopFlags{}) })
	a := &Alertmanager{cfg: cfg, deps: deps, store: store{bkt: deps.Bucket}, fw: newFirewall(cfg.Firewall, deps.Listeners),
		flags: flags, logger: logger, m: newMetrics(reg), tenants: map[string]*tenant{}, absent: map[string]time.Time{}}
	if reg != nil {
		a.tenantReg = prometheus.WrapRegistererWithPrefix("fluxpulse_", reg)
	}
	if cfg.FallbackConfigFile != "" {
		b, err := os.ReadFile(cfg.FallbackConfigFile)
		if err != nil {
			return nil, fmt.Errorf("-%s: %w", FlagFallbackConfig, err)
		}
		a.fallback = string(b)
		if _, err := a.compileChecked(&UserConfig{AlertmanagerConfig: a.fallback}); err != nil {
			return nil, fmt.Errorf("-%s %s: %w", FlagFallbackConfig, cfg.FallbackConfigFile, err)
		}
	}
	return a, nil
}

// parseExternalURL parses -alertmanager.web.external-url.
func parseExternalURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", FlagExternalURL, err)
	}
	return u, nil
}

// compileChecked compiles a configuration and builds its receivers once,
// as applying it would, so that what a receiver refuses is found before
// it is stored.
func (a *Alertmanager) compileChecked(uc *UserConfig) (*compiled, error) {
	c, err := compile(uc, a.cfg.ExternalURL)
	if err != nil {
		return nil, err
	}
	if _, err := buildReceivers(c.cfg, c.tmpl, a.logger, a.fw, nil); err != nil {
		return nil, fmt.Errorf("%w: alertmanager_config: %s", ErrInvalidConfig, redact(err.Error(), secretValues(uc.AlertmanagerConfig)))
	}
	return c, nil
}

// Ready reports whether the configurations stored at start are loaded.
func (a *Alertmanager) Ready() bool { return a.synced.Load() }

// Run starts the Alertmanager of every tenant with a stored
// configuration, keeps them in step with the bucket and writes their state
// until ctx ends; then it stops them all, writing their state a last time.
func (a *Alertmanager) Run(ctx context.Context) error {
	a.syncAll(ctx)
	a.synced.Store(true)
	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	persist := time.NewTicker(a.cfg.PersistInterval)
	defer persist.Stop()
	for {
		select {
		case <-ctx.Done():
			a.stopAll()
			return nil
		case <-poll.C:
			a.syncAll(ctx)
		case <-persist.C:
			for _, t := range a.running() {
				if err := a.persist(ctx, t); err != nil {
					a.logger.Error("write Alertmanager state; retrying at the next interval", "tenant", t.id, "err", err)
				}
			}
		}
	}
}

// syncAll syncs every tenant with a stored configuration, and every
// running tenant whose configuration may be gone.
func (a *Alertmanager) syncAll(ctx context.Context) {
	a.forgetAbsent()
	ids, err := a.store.tenants(ctx)
	if err != nil {
		a.m.syncFailures.Inc()
		a.logger.Error("list tenants with an Alertmanager configuration; keeping those running", "err", err)
		return
	}
	for _, t := range a.running() {
		if !t.fallback && !slices.Contains(ids, t.id) {
			ids = append(ids, t.id) // its read decides whether it is gone
		}
	}
	for _, id := range ids {
		if err := a.syncTenant(ctx, id); err != nil {
			a.logger.Error("sync Alertmanager configuration; keeping what runs", "tenant", id, "err", err)
		}
	}
}

// syncTenant reads one tenant's configuration and starts, reloads or (when
// it is gone) stops the tenant's Alertmanager. A fallback tenant keeps
// running without a configuration.
func (a *Alertmanager) syncTenant(ctx context.Context, id string) error {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	if a.stopped.Load() {
		return ErrShuttingDown
	}
	a.m.syncs.Inc()
	uc, err := a.store.getConfig(ctx, id)
	t := a.tenant(id)
	if errors.Is(err, errNoConfig) {
		a.setAbsent(id, true)
		if t != nil && !t.fallback {
			a.logger.Info("Alertmanager configuration deleted; stopping the tenant's Alertmanager", "tenant", id)
			a.remove(ctx, t, false)
		}
		return nil
	}
	if err == nil {
		a.setAbsent(id, false)
		var c *compiled
		if c, err = compile(uc, a.cfg.ExternalURL); err == nil {
			err = a.start(ctx, id, t, c, false)
		}
	}
	if err != nil {
		a.m.syncFailures.Inc()
	}
	return err
}

// start starts a tenant's Alertmanager with c, or reloads it when c is
// another configuration. Callers hold syncMu.
func (a *Alertmanager) start(ctx context.Context, id string, t *tenant, c *compiled, fallback bool) error {
	if t != nil {
		if t.hash == c.hash && t.fallback == fallback {
			return nil
		}
		if err := a.apply(t, c); err != nil {
			return err
		}
		t.fallback = fallback
		a.logger.Info("Alertmanager configuration applied", "tenant", id, "fallback", fallback)
		return nil
	}
	if m := a.cfg.MaxTenants; m > 0 && len(a.running()) >= m {
		return fmt.Errorf("tenant %s: %w: %d run an Alertmanager in this process already (-%s)", id, ErrTooManyTenants, m, FlagMaxTenants)
	}
	t, err := a.newTenant(ctx, id, c, fallback)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.tenants[id] = t
	a.m.tenants.Set(float64(len(a.tenants)))
	a.mu.Unlock()
	a.logger.Info("Alertmanager started", "tenant", id, "fallback", fallback)
	return nil
}

// instance returns the tenant's running Alertmanager for a request,
// starting it if its configuration was stored since the last poll, or with
// the fallback configuration. Nil without either.
func (a *Alertmanager) instance(ctx context.Context, id string) (*tenant, error) {
	if t := a.tenant(id); t != nil {
		return t, nil
	}
	if !a.recentlyAbsent(id) {
		if err := a.syncTenant(ctx, id); err != nil {
			return nil, err
		}
	}
	if t := a.tenant(id); t != nil || a.fallback == "" {
		return t, nil
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	if a.stopped.Load() {
		return nil, ErrShuttingDown
	}
	if t := a.tenant(id); t != nil {
		return t, nil
	}
	c, err := compile(&UserConfig{AlertmanagerConfig: a.fallback}, a.cfg.ExternalURL)
	if err != nil {
		return nil, err
	}
	if err := a.start(ctx, id, nil, c, true); err != nil {
		return nil, err
	}
	return a.tenant(id), nil
}

// setAbsent records whether a tenant was found without a configuration.
func (a *Alertmanager) setAbsent(id string, absent bool) {
	a.absentMu.Lock()
	defer a.absentMu.Unlock()
	if absent {
		a.absent[id] = time.Now()
	} else {
		delete(a.absent, id)
	}
}

// recentlyAbsent reports whether the tenant was found without a
// configuration within the last poll interval.
func (a *Alertmanager) recentlyAbsent(id string) bool {
	a.absentMu.Lock()
	defer a.absentMu.Unlock()
	at, ok := a.absent[id]
	return ok && time.Since(at) < a.cfg.PollInterval
}

// forgetAbsent drops what a poll interval has made stale.
func (a *Alertmanager) forgetAbsent() {
	a.absentMu.Lock()
	defer a.absentMu.Unlock()
	for id, at := range a.absent {
		if time.Since(at) >= a.cfg.PollInterval {
			delete(a.absent, id)
		}
	}
}

// tenant returns the tenant's running Alertmanager, or nil.
func (a *Alertmanager) tenant(id string) *tenant {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.tenants[id]
}

func (a *Alertmanager) running() []*tenant {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]*tenant, 0, len(a.tenants))
	for _, t := range a.tenants {
		out = append(out, t)
	}
	return out
}

// remove forgets a tenant and stops it. Callers hold syncMu.
func (a *Alertmanager) remove(ctx context.Context, t *tenant, persist bool) {
	a.mu.Lock()
	delete(a.tenants, t.id)
	a.m.tenants.Set(float64(len(a.tenants)))
	a.mu.Unlock()
	a.stop(ctx, t, persist)
}

// stopAll stops every tenant, writing its state, and refuses to start any
// from then on.
func (a *Alertmanager) stopAll() {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	a.stopped.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range a.running() {
		wg.Go(func() { a.remove(ctx, t, true) })
	}
	wg.Wait()
}

// audit records an entry, if there is an audit log.
func (a *Alertmanager) audit(e audit.Entry) {
	if a.deps.Audit != nil {
		a.deps.Audit.Log(e)
	}
}
