package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	apiv2 "github.com/prometheus/alertmanager/api/v2"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/labelset"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/logthrottle"
	"github.com/fluxpulse/fluxpulse/tenantmetrics"
)

// Intervals of Alertmanager's own background work, as its defaults.
const (
	alertGCInterval             = 30 * time.Minute
	dispatchMaintenanceInterval = 30 * time.Second
)

// tenant is one tenant's Alertmanager: Alertmanager's alert store,
// silences, notification log, inhibitor, dispatcher and API, as
// cmd/alertmanager wires them, without clustering.
type tenant struct {
	id       string
	logger   *slog.Logger
	reg      *tenantmetrics.Registry
	cancel   context.CancelFunc // of the alert store's garbage collection
	alerts   *mem.Alerts
	silences *silence.Silences
	silencer *silence.Silencer
	nflog    *nflog.Log
	api      *apiv2.API
	pipeline *notify.PipelineBuilder
	dmetrics *dispatch.DispatcherMetrics
	guard    *guard

	// Set under Alertmanager.syncMu.
	hash       [32]byte
	fallback   bool // running the fallback configuration
	inhibitor  atomic.Pointer[inhibit.Inhibitor]
	dispatcher atomic.Pointer[dispatch.Dispatcher]

	persistMu                 sync.Mutex
	gone                      bool // stopped: no more snapshots (under persistMu)
	silencesDirty, nflogDirty atomic.Bool
}

// newTenant starts a tenant's Alertmanager with the state stored for it
// and configuration c. State that exists but cannot be read is an error:
// starting empty would overwrite it at the next snapshot.
func (a *Alertmanager) newTenant(ctx context.Context, id string, c *compiled, fallback bool) (_ *tenant, err error) {
	sil, err := a.readState(ctx, id, silencesObject)
	if err != nil {
		return nil, err
	}
	nfl, err := a.readState(ctx, id, nflogObject)
	if err != nil {
		return nil, err
	}
	lim := func() limits.Limits { return a.deps.Limits.Limits(id) }
	t := &tenant{id: id, logger: a.logger.With("tenant", id), reg: tenantmetrics.New(a.tenantReg, id), fallback: fallback}
	t.guard = &guard{tenant: id, limits: lim, metrics: a.m, logger: t.logger, logs: logthrottle.New(time.Minute), limiters: map[string]*rate.Limiter{}}
	defer func() {
		if err != nil {
			t.reg.UnregisterAll()
		}
	}()
	if t.silences, err = silence.New(silence.Options{SnapshotReader: sil, Retention: a.cfg.Retention, Logger: t.logger.With("component", "silences"), Metrics: t.reg,
		Limits: silence.Limits{
			MaxSilences:         func() int { return lim().AlertmanagerMaxSilencesCount },
			MaxSilenceSizeBytes: func() int { return lim().AlertmanagerMaxSilenceSizeBytes },
		}}); err != nil {
		return nil, fmt.Errorf("load the silences of tenant %s: %w", id, err)
	}
	if t.nflog, err = nflog.New(nflog.Options{SnapshotReader: nfl, Retention: a.cfg.Retention, Logger: t.logger.With("component", "nflog"), Metrics: t.reg}); err != nil {
		return nil, fmt.Errorf("load the notification log of tenant %s: %w", id, err)
	}
	t.silencer = silence.NewSilencer(t.silences, t.logger, eventrecorder.Recorder{})
	counter := &alertCounter{next: t.silencer, limit: func() int { return lim().AlertmanagerMaxAlertsCount },
		refused: a.m.alertsRefused.WithLabelValues(id)}
	gcCtx, cancel := context.WithCancel(context.Background())
	if t.alerts, err = mem.NewAlerts(gcCtx, alertGCInterval, 0, counter, t.logger, eventrecorder.Recorder{}, t.reg, a.flags); err != nil {
		cancel()
		return nil, fmt.Errorf("alert store of tenant %s: %w", id, err)
	}
	t.cancel = cancel
	defer func() {
		if err != nil {
			t.alerts.Close()
			cancel()
		}
	}()
	if t.api, err = apiv2.NewAPI(t.alerts, t.groups, t.silences, nil, t.logger.With("component", "api"), t.reg); err != nil {
		return nil, fmt.Errorf("API of tenant %s: %w", id, err)
	}
	t.pipeline = notify.NewPipelineBuilder(t.reg, a.flags, eventrecorder.Recorder{})
	t.dmetrics = dispatch.NewDispatcherMetrics(false, t.reg, a.flags)
	if err := a.apply(t, c); err != nil {
		return nil, err
	}
	return t, nil
}

// readState reads a state snapshot; nil when there is none.
func (a *Alertmanager) readState(ctx context.Context, id, object string) (io.Reader, error) {
	b, err := a.store.get(ctx, id, object)
	if bucket.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// groups serves the API's alert groups from the running dispatcher.
func (t *tenant) groups(ctx context.Context, rf func(*dispatch.Route) bool, af dispatch.AlertFilter) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
	d := t.dispatcher.Load()
	if d == nil {
		return nil, nil, errors.New("the tenant's Alertmanager is starting")
	}
	return d.Groups(ctx, rf, af)
}

// apply makes c the tenant's configuration, as Alertmanager reloads one:
// receivers, routes and inhibition rules are rebuilt, alerts, silences and
// the notification log stay.
func (a *Alertmanager) apply(t *tenant, c *compiled) error {
	receivers, err := buildReceivers(c.cfg, c.tmpl, t.logger, a.fw, t.guard)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range c.cfg.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range c.cfg.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	intervener := timeinterval.NewIntervener(intervals)
	inh := inhibit.NewInhibitor(t.alerts, c.cfg.InhibitRules, t.logger, eventrecorder.Recorder{})
	stage := t.pipeline.New(receivers, func() time.Duration { return 0 }, inh, t.silencer, intervener, &markingLog{t.nflog, &t.nflogDirty}, nil)
	routes := dispatch.NewRoute(c.cfg.Route, nil)
	if old := t.inhibitor.Load(); old != nil {
		old.Stop()
	}
	if old := t.dispatcher.Load(); old != nil {
		old.Stop()
	}
	t.api.Update(c.cfg, func(ctx context.Context, ls labelset.LabelSet) {
		if i := t.inhibitor.Load(); i != nil {
			i.Mutes(ctx, ls)
		}
		t.silencer.Mutes(ctx, ls)
	})
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	disp := dispatch.NewDispatcher(t.alerts, routes, stage, intervener, timeout, dispatchMaintenanceInterval, nil, t.logger, eventrecorder.Recorder{}, t.dmetrics, c.tmpl)
	// The inhibitor loads the alerts before the dispatcher starts, so that
	// nothing inhibited is sent meanwhile.
	go inh.Run()
	inh.WaitForLoading()
	t.inhibitor.Store(inh)
	go disp.Run(time.Now())
	disp.WaitForLoading()
	t.dispatcher.Store(disp)
	t.hash = c.hash
	return nil
}

// stop stops the tenant's notifications and, with persist, writes its
// state; its metrics are removed.
func (a *Alertmanager) stop(ctx context.Context, t *tenant, persist bool) {
	if d := t.dispatcher.Load(); d != nil {
		d.Stop()
	}
	if i := t.inhibitor.Load(); i != nil {
		i.Stop()
	}
	t.alerts.Close()
	t.cancel()
	if persist {
		t.silencesDirty.Store(true) // a last snapshot, whatever happened
		t.nflogDirty.Store(true)
		if err := a.persist(ctx, t); err != nil {
			a.logger.Error("write the Alertmanager state at shutdown", "tenant", t.id, "err", err)
		}
	}
	t.persistMu.Lock()
	t.gone = true
	t.persistMu.Unlock()
	t.reg.UnregisterAll()
	a.m.forget(t.id)
}

// persist writes the silences and notification log if they changed since
// they were last written, garbage-collecting them first.
func (a *Alertmanager) persist(ctx context.Context, t *tenant) error {
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	if t.gone {
		return nil
	}
	if n, _ := t.silences.GC(); n > 0 {
		t.silencesDirty.Store(true)
	}
	if n, _ := t.nflog.GC(); n > 0 {
		t.nflogDirty.Store(true)
	}
	var errs []error
	for _, s := range []struct {
		object string
		dirty  *atomic.Bool
		snap   func(io.Writer) (int64, error)
	}{{silencesObject, &t.silencesDirty, t.silences.Snapshot}, {nflogObject, &t.nflogDirty, t.nflog.Snapshot}} {
		if !s.dirty.Swap(false) {
			continue
		}
		var buf bytes.Buffer
		_, err := s.snap(&buf)
		if err == nil {
			err = a.store.put(ctx, t.id, s.object, buf.Bytes())
		}
		if err != nil {
			s.dirty.Store(true)
			a.m.persistFailures.Inc()
			errs = append(errs, fmt.Errorf("snapshot %s: %w", s.object, err))
		}
	}
	return errors.Join(errs...)
}

// markingLog is the notification log the pipeline writes to: it marks the
// log changed, for the next snapshot.
type markingLog struct {
	log   *nflog.Log
	dirty *atomic.Bool
}

// Log implements notify.NotificationLog. The mark comes after the entry is
// in the log: a snapshot taken between the two would otherwise clear the
// mark without the entry.
func (l *markingLog) Log(r *nflogpb.Receiver, gkey string, firing, resolved, muted []uint64, store *nflog.Store, expiry time.Duration) error {
	err := l.log.Log(r, gkey, firing, resolved, muted, store, expiry)
	l.dirty.Store(true)
	return err
}

// Query implements notify.NotificationLog.
func (l *markingLog) Query(params ...nflog.QueryParam) ([]*nflogpb.Entry, error) {
	return l.log.Query(params...)
}

// alertCounter enforces alertmanager_max_alerts_count: the alert store
// calls it around every change, under its lock for new alerts.
type alertCounter struct {
	next    mem.AlertStoreCallback // the silencer
	limit   func() int
	refused interface{ Inc() }

	mu    sync.Mutex
	count int
}

// PreStore implements mem.AlertStoreCallback.
func (c *alertCounter) PreStore(a *alert.Alert, existing bool) error {
	if !existing {
		c.mu.Lock()
		n := c.count
		c.mu.Unlock()
		if l := c.limit(); l > 0 && n >= l {
			c.refused.Inc()
			return fmt.Errorf("alert %s refused: the tenant holds %d alerts, the limit (%s)", a.Name(), n, limits.Source(limits.FlagAlertmanagerMaxAlerts))
		}
	}
	return c.next.PreStore(a, existing)
}

// PostStore implements mem.AlertStoreCallback.
func (c *alertCounter) PostStore(a *alert.Alert, existing bool) {
	if !existing {
		c.mu.Lock()
		c.count++
		c.mu.Unlock()
	}
	c.next.PostStore(a, existing)
}

// PostDelete implements mem.AlertStoreCallback.
func (c *alertCounter) PostDelete(a *alert.Alert) {
	c.mu.Lock()
	c.count--
	c.mu.Unlock()
	c.next.PostDelete(a)
}

// PostGC implements mem.AlertStoreCallback.
func (c *alertCounter) PostGC(fps model.Fingerprints) { c.next.PostGC(fps) }
