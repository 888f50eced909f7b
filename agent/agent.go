package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	tsdbagent "github.com/prometheus/prometheus/tsdb/agent"
	"github.com/prometheus/prometheus/util/compression"
)

const (
	// flushDeadline is how long the queue may keep sending on shutdown;
	// what it could not send stays in the WAL for the next start.
	flushDeadline = 5 * time.Second
	// handOverTimeout bounds the last backlog pass, during which no
	// collection can be written.
	handOverTimeout = 5 * time.Second
	// batchSize is the most samples in one request, of the queue and of
	// the backlog sender. A host sends a few hundred to a few thousand
	// samples a collection; Prometheus' default of 2000 (and its buffers
	// sized for it) is for servers.
	batchSize = 500
	// queueCapacity is how many samples the queue holds in memory; the
	// rest waits in the WAL.
	queueCapacity = 5 * batchSize
	// stripeSize is the number of lock stripes of the WAL's series map:
	// the default of 16384, each with its own map, costs 2 MiB for a few
	// thousand series written by one goroutine.
	stripeSize = 256
	// logWindow is how often the same log message may repeat.
	logWindow = 10 * time.Minute
)

// Agent collects host metrics and sends them to remote write through a
// write-ahead log.
type Agent struct {
	cfg    Config
	logger *slog.Logger
	reg    prometheus.Registerer
	m      *metrics
	coll   *collection

	// appendMu is held while a collection is written to the WAL; the
	// hand-over from the backlog to the queue holds it so that nothing is
	// written meanwhile.
	appendMu sync.Mutex
}

// New sets up the collectors. It checks only what collecting needs
// (Config.Validate checks the rest, and Run calls it) and starts nothing.
// A nil logger discards; a nil registerer exports nothing.
func New(cfg Config, l *slog.Logger, reg prometheus.Registerer) (*Agent, error) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := cfg.validateCollect(); err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("find the host name for the instance label: %w", err)
	}
	l = slog.New(newThrottle(l.Handler(), logWindow))
	m, err := newMetrics(reg, cfg.WALDir)
	if err != nil {
		return nil, err
	}
	coll, err := newCollection(cfg, host, l, m.dropped)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, logger: l, reg: reg, m: m, coll: coll}, nil
}

// Gather collects once and returns exactly what would be sent: the
// allow-listed families with the external labels. It writes nothing.
func (a *Agent) Gather() ([]*dto.MetricFamily, error) {
	return a.coll.gather()
}

// session is the state of one Run.
type session struct {
	a          *Agent
	db         *tsdbagent.DB
	rs         *remote.Storage
	conf       *config.Config
	bl         *backlog
	started    <-chan struct{} // the queue's WAL watcher has fixed its start
	sent       atomic.Int64    // highest timestamp the backlog sent, ms
	handedOver atomic.Bool
	saved      int64 // progress last written to disk
}

// Run opens the WAL, collects every interval until ctx ends, and sends
// through remote write: first the backlog an earlier run left in the WAL,
// then, once that has caught up, through Prometheus' remote-write queue.
// On return the WAL is closed and the send progress saved. Run may be
// called once.
func (a *Agent) Run(ctx context.Context) (err error) {
	if err := a.cfg.Validate(); err != nil {
		return err
	}
	s, err := a.open()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fatal := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.sendBacklog(ctx); err != nil {
			fatal <- err
		}
	})
	defer wg.Wait()
	defer cancel()

	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	for {
		s.collect(ctx)
		s.saveProgress()
		select {
		case <-ctx.Done():
			return nil
		case err := <-fatal:
			return err
		case <-tick.C:
		}
	}
}

// open opens the WAL and prepares the queue and the backlog sender. The
// WAL must be open before the queue is configured: its watcher tails it.
func (a *Agent) open() (*session, error) {
	dir := a.cfg.WALDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("-%s: %w", FlagWALDir, err)
	}
	conf, err := a.cfg.remoteConfig()
	if err != nil {
		return nil, err
	}
	cc, err := a.cfg.clientConfig()
	if err != nil {
		return nil, err
	}
	client, err := remote.NewWriteClient(queueName+"-backlog", cc)
	if err != nil {
		return nil, fmt.Errorf("remote-write client: %w", err)
	}
	from, err := loadProgress(dir)
	if err != nil {
		a.logger.Warn("send progress unreadable; sending the whole WAL again", "err", err)
	}

	started := newWatcherStarted(a.logger.Handler())
	latest := func() (int64, error) { return math.MaxInt64, nil } // for remote read, unused
	rs := remote.NewStorage(slog.New(started), a.reg, latest, dir, flushDeadline, nil, false)
	o := tsdbagent.DefaultOptions()
	o.WALCompression = compression.Snappy
	o.MaxWALTime = a.cfg.WALRetention.Milliseconds()
	o.MinWALTime = min(5*time.Minute, a.cfg.WALRetention).Milliseconds()
	o.TruncateFrequency = min(max(a.cfg.WALRetention/2, time.Minute), 2*time.Hour)
	o.StripeSize = stripeSize
	db, err := tsdbagent.Open(a.logger, a.reg, rs, dir, o)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open the WAL in -%s=%s: %w", FlagWALDir, dir, err), rs.Close())
	}
	db.SetWriteNotified(rs)

	s := &session{a: a, db: db, rs: rs, conf: conf, started: started.ch, saved: from}
	s.sent.Store(from)
	s.bl = &backlog{dir: filepath.Join(dir, "wal"), from: from, client: client, v2: a.cfg.Protocol == "2.0",
		batchSize: batchSize, maxBackoff: a.cfg.MaxBackoff, logger: a.logger, m: a.m, sent: &s.sent}
	if err := s.bl.open(); err != nil {
		a.logger.Error("cannot read the WAL backlog; samples an earlier run did not send are lost", "err", err)
		s.bl = nil
	}
	return s, nil
}

// close flushes the queue, saves the progress and closes the WAL.
func (s *session) close() error {
	errRS := s.rs.Close()
	s.saveProgress()
	return errors.Join(errRS, s.db.Close())
}

// collect gathers once and writes the samples to the WAL, all with the
// time the collection started.
func (s *session) collect(ctx context.Context) {
	a := s.a
	a.appendMu.Lock()
	defer a.appendMu.Unlock()
	start := time.Now()
	a.m.collections.Inc()
	defer func() { a.m.collectionSeconds.Set(time.Since(start).Seconds()) }()
	mfs, err := a.coll.gather()
	if err != nil {
		a.m.collectionFailures.Inc()
		a.logger.Error("collection failed", "err", err)
		return
	}
	n, failed, err := appendFamilies(s.db.AppenderV2(ctx), mfs, timestamp.FromTime(start))
	a.m.appendFailed.Add(float64(failed))
	if err != nil {
		a.m.collectionFailures.Inc()
		a.logger.Error("writing to the WAL failed", "err", err)
		return
	}
	a.m.appended.Add(float64(n))
}

// appendFamilies appends one sample per series at ts and commits.
func appendFamilies(app storage.AppenderV2, mfs []*dto.MetricFamily, ts int64) (appended, failed int, err error) {
	b := labels.NewScratchBuilder(16)
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			b.Reset()
			b.Add(labels.MetricName, mf.GetName())
			for _, l := range m.Label {
				b.Add(l.GetName(), l.GetValue())
			}
			b.Sort()
			v := m.GetGauge().GetValue()
			if mf.GetType() == dto.MetricType_COUNTER {
				v = m.GetCounter().GetValue()
			}
			if _, err := app.Append(0, b.Labels(), 0, ts, v, nil, nil, storage.AOptions{}); err != nil {
				failed++
				continue
			}
			appended++
		}
	}
	if err := app.Commit(); err != nil {
		return 0, appended + failed, err
	}
	return appended, failed, nil
}

// progress is the time up to which everything has been sent.
func (s *session) progress() int64 {
	p := s.sent.Load()
	if s.handedOver.Load() {
		// Whole seconds: the queue exports it as a float of seconds.
		p = max(p, s.rs.LowestSentTimestamp())
	}
	return p
}

func (s *session) saveProgress() {
	p := s.progress()
	s.a.m.sentUntil.Set(float64(p) / 1000)
	if p == s.saved {
		return
	}
	if err := saveProgress(s.a.cfg.WALDir, p); err != nil {
		s.a.logger.Warn("cannot save the send progress", "err", err)
		return
	}
	s.saved = p
}
