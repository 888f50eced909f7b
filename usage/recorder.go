package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Recorder. The zero value is what NewRecorder uses.
type Options struct {
	// Now is the clock; nil means time.Now. Tests inject one to cross
	// hours without waiting.
	Now func() time.Time
	// Remote, if set, receives a copy of every hour file written, as the
	// files of Instance, so that a report can merge every process's
	// (#17). ReplicationFactor is that of the ingesters whose active
	// series the gauges report (0 or 1: no replication).
	Remote            Remote
	Instance          string
	ReplicationFactor int
	// Checkpoint is how often the hour in progress is written; 0 means
	// every minute.
	Checkpoint time.Duration
}

// Recorder counts each tenant's usage and keeps an hourly record of it on
// disk. Add is safe for concurrent use and cheap; Run closes hours. A nil
// *Recorder is a valid Recorder that records nothing.
type Recorder struct {
	dir    string
	gauges GaugeFunc
	now    func() time.Time
	logger *slog.Logger

	// tick is how often Run looks at the clock; checkpoint how often it
	// writes the hour in progress.
	tick, checkpoint time.Duration

	remote   Remote
	instance string
	rf       int

	tenants       sync.Map // tenant ID → *counters, never removed
	latestGauges  atomic.Pointer[map[string]Gauges]
	writeFailures prometheus.Counter

	mu        sync.Mutex // guards what follows; Add never takes it
	hour      time.Time  // start of the hour in progress
	prior     map[string]Usage
	start     map[string]totals // counter totals when hour started
	lastWrite time.Time         // when the hour in progress was last written
	unsaved   map[time.Time]*hourFile
	unshipped map[time.Time]*hourFile // closed hours not in the remote yet
}

// totals are a tenant's counters since the process started.
type totals [numKinds]int64

// counters are a tenant's live counters.
type counters struct{ c [numKinds]atomic.Int64 }

// NewRecorder returns a Recorder that keeps its hour files in dir,
// creating it (mode 0700) if needed. gauges may be nil. It picks up the
// figures of the hour in progress if an earlier process wrote them, and
// registers the fluxpulse_usage_* metrics on reg (nil: none). It starts no
// goroutine: call Run.
func NewRecorder(dir string, gauges GaugeFunc, logger *slog.Logger, reg prometheus.Registerer) (*Recorder, error) {
	return NewRecorderWithOptions(dir, gauges, Options{}, logger, reg)
}

// NewRecorderWithOptions is NewRecorder with options.
func NewRecorderWithOptions(dir string, gauges GaugeFunc, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Recorder, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create usage directory: %w", err)
	}
	if opts.Checkpoint <= 0 {
		opts.Checkpoint = time.Minute
	}
	r := &Recorder{
		dir: dir, gauges: gauges, now: opts.Now, logger: logger,
		tick: min(time.Second, opts.Checkpoint), checkpoint: opts.Checkpoint,
		remote: opts.Remote, instance: opts.Instance, rf: opts.ReplicationFactor,
		start: map[string]totals{}, unsaved: map[time.Time]*hourFile{}, unshipped: map[time.Time]*hourFile{},
		writeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_usage_file_write_failures_total",
			Help: "Hourly usage files that could not be written (retried every tick).",
		}),
	}
	now := r.now()
	r.hour, r.lastWrite = hourOf(now), now
	r.prior = r.loadPrior(r.hour)
	if reg != nil {
		for _, c := range []prometheus.Collector{newCollector(r), r.writeFailures} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register usage metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Add counts n of kind k for tenant. Non-positive n and unknown kinds are
// ignored. After a tenant's first call it takes no lock.
func (r *Recorder) Add(tenant string, k Kind, n int64) {
	if r == nil || n <= 0 || k >= numKinds {
		return
	}
	c, ok := r.tenants.Load(tenant)
	if !ok {
		c, _ = r.tenants.LoadOrStore(tenant, new(counters))
	}
	c.(*counters).c[k].Add(n)
}

// snapshot reads every tenant's counters.
func (r *Recorder) snapshot() map[string]totals {
	out := map[string]totals{}
	r.tenants.Range(func(k, v any) bool {
		var t totals
		for i := range t {
			t[i] = v.(*counters).c[i].Load()
		}
		out[k.(string)] = t
		return true
	})
	return out
}

// sampleGauges calls the gauge function and keeps its answer as the
// latest sample.
func (r *Recorder) sampleGauges() {
	if r.gauges == nil {
		return
	}
	g := maps.Clone(r.gauges())
	r.latestGauges.Store(&g)
}

func (r *Recorder) gaugeSample() map[string]Gauges {
	if p := r.latestGauges.Load(); p != nil {
		return *p
	}
	return nil
}

// loadPrior returns what earlier processes recorded for hour.
func (r *Recorder) loadPrior(hour time.Time) map[string]Usage {
	hf, err := readHour(r.dir, hour)
	if err != nil {
		// Unreadable: it will be overwritten with this process's figures.
		r.logger.Error("usage file unreadable; its figures are lost", "err", err)
		return nil
	}
	if hf == nil {
		return nil
	}
	return hf.Tenants
}

// build returns the hour file of the hour in progress from the counter
// totals snap: earlier processes' figures plus what this one counted since
// the hour started, and the latest gauges. r.mu is held.
func (r *Recorder) build(snap map[string]totals, partial bool) *hourFile {
	tenants := maps.Clone(r.prior)
	if tenants == nil {
		tenants = map[string]Usage{}
	}
	for tenant, tot := range snap {
		base := r.start[tenant]
		if tot == base {
			continue
		}
		u := tenants[tenant]
		for k := range numKinds {
			*u.Counter(k) += tot[k] - base[k]
		}
		tenants[tenant] = u
	}
	for tenant, g := range r.gaugeSample() {
		u, ok := tenants[tenant]
		if !ok && g == (Gauges{}) {
			continue
		}
		u.ActiveSeries, u.StoredBytes = g.ActiveSeries, g.StoredBytes
		tenants[tenant] = u
	}
	return &hourFile{Version: fileVersion, Hour: r.hour, Partial: partial, Written: r.now().UTC(), Tenants: tenants,
		Instance: r.instance, ReplicationFactor: r.rf}
}

// save writes an hour file, keeping it for a later attempt if that fails.
// r.mu is held.
func (r *Recorder) save(hf *hourFile) error {
	if err := writeHour(r.dir, *hf); err != nil {
		r.writeFailures.Inc()
		r.logger.Error("usage file not written; will retry", "hour", hf.Hour, "err", err)
		if !hf.Partial {
			r.unsaved[hf.Hour] = hf
		}
		return err
	}
	delete(r.unsaved, hf.Hour)
	return r.shipOrKeep(hf)
}

// shipOrKeep ships an hour file to the remote, keeping a closed hour for a
// later attempt if that fails (the hour in progress is shipped again at its
// next checkpoint anyway). r.mu is held.
func (r *Recorder) shipOrKeep(hf *hourFile) error {
	if err := r.ship(hf); err != nil {
		r.writeFailures.Inc()
		r.logger.Error("usage not shipped to the bucket; will retry", "hour", hf.Hour, "err", err)
		if !hf.Partial {
			r.unshipped[hf.Hour] = hf
		}
		return err
	}
	delete(r.unshipped, hf.Hour)
	return nil
}

// retryUnsaved writes closed hours whose first write failed. r.mu is held.
func (r *Recorder) retryUnsaved() error {
	var errs []error
	for _, hf := range r.unsaved {
		errs = append(errs, r.save(hf))
	}
	for _, hf := range r.unshipped {
		errs = append(errs, r.shipOrKeep(hf))
	}
	return errors.Join(errs...)
}

// advance closes the hour in progress when the clock has left it, and
// otherwise writes it every checkpoint interval.
func (r *Recorder) advance() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	switch next := hourOf(now); {
	case next.After(r.hour):
		r.sampleGauges()
		snap := r.snapshot()
		_ = r.save(r.build(snap, false))
		r.hour, r.start, r.lastWrite = next, snap, now
		r.prior = r.loadPrior(next)
	case now.Sub(r.lastWrite) >= r.checkpoint:
		_ = r.save(r.build(r.snapshot(), true))
		r.lastWrite = now
	}
	_ = r.retryUnsaved()
}

// Run closes each hour as the clock leaves it (sampling the gauges and
// writing the hour's file), writes the hour in progress every minute so
// that a crash loses at most a minute, and on cancellation of ctx Flushes.
// It samples the gauges when it starts.
func (r *Recorder) Run(ctx context.Context) error {
	if r == nil {
		<-ctx.Done()
		return nil
	}
	r.sampleGauges()
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.Flush()
		case <-t.C:
			r.advance()
		}
	}
}

// Flush samples the gauges and writes the hour in progress (marked
// partial) and any closed hour not written yet.
func (r *Recorder) Flush() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sampleGauges()
	err := r.save(r.build(r.snapshot(), true))
	r.lastWrite = r.now()
	return errors.Join(err, r.retryUnsaved())
}

// Report is the package's Report over the recorder's directory, with the
// hour in progress and closed hours not yet written taken from memory, so
// it is up to date to the call.
func (r *Recorder) Report(from, to time.Time, tenants []string) ([]Row, error) {
	if r == nil {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	hours, err := r.hoursLocked(from, to)
	if err != nil {
		return nil, err
	}
	return rows(hours, tenants), nil
}

// hoursLocked returns this recorder's hour files overlapping [from, to):
// those on disk, closed hours not written yet and the hour in progress.
// r.mu is held.
func (r *Recorder) hoursLocked(from, to time.Time) (map[time.Time]*hourFile, error) {
	hours, err := readHours(r.dir, from, to)
	if err != nil {
		return nil, err
	}
	for hour, hf := range r.unsaved {
		if overlaps(hour, from, to) {
			hours[hour] = hf
		}
	}
	if overlaps(r.hour, from, to) {
		hours[r.hour] = r.build(r.snapshot(), true)
	}
	return hours, nil
}
