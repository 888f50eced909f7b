package agent

import (
	"io/fs"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's own metrics, on its /metrics page. The
// remote-write queue and the WAL export theirs next to these
// (prometheus_remote_storage_*, prometheus_agent_*, prometheus_tsdb_wal_*).
type metrics struct {
	collections        prometheus.Counter
	collectionFailures prometheus.Counter
	collectionSeconds  prometheus.Gauge
	appended           prometheus.Counter
	appendFailed       prometheus.Counter
	dropped            *prometheus.CounterVec
	backlogSent        prometheus.Counter
	backlogFailed      prometheus.Counter
	backlogRetried     prometheus.Counter
	backlogActive      prometheus.Gauge
	sentUntil          prometheus.Gauge
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func newMetrics(reg prometheus.Registerer, walDir string) (*metrics, error) {
	m := &metrics{
		collections:        counter("fluxpulse_agent_collections_total", "Collections run."),
		collectionFailures: counter("fluxpulse_agent_collection_failures_total", "Collections that produced nothing or could not be written to the WAL."),
		collectionSeconds:  gauge("fluxpulse_agent_collection_duration_seconds", "Duration of the last collection, WAL write included."),
		appended:           counter("fluxpulse_agent_samples_appended_total", "Samples written to the WAL."),
		appendFailed:       counter("fluxpulse_agent_samples_append_failed_total", "Samples the WAL refused (e.g. the clock went backwards)."),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_agent_dropped_series_total", Help: "Series collected but not sent because their family is not on the allow-list."}, []string{"family"}),
		backlogSent:    counter("fluxpulse_agent_backlog_samples_sent_total", "Samples of an earlier run sent from the WAL on start (the queue sends the rest: prometheus_remote_storage_samples_total)."),
		backlogFailed:  counter("fluxpulse_agent_backlog_samples_failed_total", "Samples of the WAL backlog the receiver refused."),
		backlogRetried: counter("fluxpulse_agent_backlog_samples_retried_total", "Samples of the WAL backlog sent again after a retryable failure."),
		backlogActive:  gauge("fluxpulse_agent_backlog_active", "1 while the WAL backlog is being sent, before the queue takes over."),
		sentUntil:      gauge("fluxpulse_agent_sent_until_timestamp_seconds", "Everything collected before this time has been sent."),
	}
	walSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fluxpulse_agent_wal_size_bytes", Help: "Size of the write-ahead log on disk, checkpoint included.",
	}, func() float64 { return float64(dirSize(filepath.Join(walDir, "wal"))) })
	for _, c := range []prometheus.Collector{m.collections, m.collectionFailures, m.collectionSeconds, m.appended,
		m.appendFailed, m.dropped, m.backlogSent, m.backlogFailed, m.backlogRetried, m.backlogActive, m.sentUntil, walSize} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a segment removed while walking
		}
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
