package agent

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/node_exporter/collector"
)

// nodeExporterArgs configure node_exporter's collector package. It reads its
// configuration from flags on kingpin's global command line, whose defaults
// apply only once something parses it; the agent is the only code in
// FluxPulse that touches kingpin, and it parses these fixed arguments once
// per process (never os.Args).
var nodeExporterArgs = []string{
	"--collector.processes",
	"--collector.systemd",
	"--no-collector.cpu.guest",
}

var (
	kingpinOnce sync.Once
	kingpinErr  error
)

func parseNodeExporterFlags() error {
	kingpinOnce.Do(func() {
		if _, err := kingpin.CommandLine.Parse(nodeExporterArgs); err != nil {
			kingpinErr = fmt.Errorf("configure node_exporter collectors: %w", err)
		}
	})
	return kingpinErr
}

// systemdRuns reports whether systemd is the init system, the same test as
// sd_booted(3).
func systemdRuns() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// collection gathers one round of samples: node_exporter's collectors, the
// named processes and the heartbeat, filtered by the allow-list and labelled
// with the external labels.
type collection struct {
	reg     *prometheus.Registry
	labels  []*dto.LabelPair // external labels, sorted by name
	dropped *prometheus.CounterVec
	logger  *slog.Logger
}

func newCollection(cfg Config, hostname string, logger *slog.Logger, dropped *prometheus.CounterVec) (*collection, error) {
	if err := parseNodeExporterFlags(); err != nil {
		return nil, err
	}
	filters := slices.Clone(collectors)
	if systemdRuns() {
		filters = append(filters, "systemd")
	}
	nc, err := collector.NewNodeCollector(logger, filters...)
	if err != nil {
		return nil, fmt.Errorf("set up node_exporter collectors: %w", err)
	}
	reg := prometheus.NewRegistry()
	heartbeat := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: HeartbeatMetric,
		Help: "Always 1: a sample is written at every collection of the FluxPulse agent.",
	}, func() float64 { return 1 })
	for _, c := range []prometheus.Collector{nc, heartbeat, newProcessCollector("/proc", cfg.Processes)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("BUG: register collector: %w", err)
		}
	}
	return &collection{reg: reg, labels: externalLabels(cfg.ExternalLabels, hostname), dropped: dropped, logger: logger}, nil
}

// externalLabels returns ls with instance set to hostname unless ls sets it.
func externalLabels(ls Labels, hostname string) []*dto.LabelPair {
	var out []*dto.LabelPair
	if _, ok := ls.Get("instance"); !ok {
		out = append(out, &dto.LabelPair{Name: new("instance"), Value: new(hostname)})
	}
	for _, l := range ls {
		out = append(out, &dto.LabelPair{Name: new(l.Name), Value: new(l.Value)})
	}
	slices.SortFunc(out, compareLabelPairs)
	return out
}

func compareLabelPairs(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) }

// gather runs every collector once and returns what may be sent: only
// families on the allow-list, only counters and gauges, each series with the
// external labels added (a series' own label of the same name wins). A
// failing collector is logged and leaves its series out; gather fails only
// when nothing could be gathered.
func (c *collection) gather() ([]*dto.MetricFamily, error) {
	mfs, err := c.reg.Gather()
	if err != nil {
		if len(mfs) == 0 {
			return nil, fmt.Errorf("gather metrics: %w", err)
		}
		c.logger.Warn("some metrics could not be gathered", "err", err)
	}
	out := mfs[:0]
	for _, mf := range mfs {
		if !Allowed(mf.GetName()) || (mf.GetType() != dto.MetricType_COUNTER && mf.GetType() != dto.MetricType_GAUGE) {
			c.dropped.WithLabelValues(mf.GetName()).Add(float64(len(mf.Metric)))
			continue
		}
		for _, m := range mf.Metric {
			m.Label = c.withExternal(m.Label)
		}
		out = append(out, mf)
	}
	return out, nil
}

func (c *collection) withExternal(ls []*dto.LabelPair) []*dto.LabelPair {
	for _, e := range c.labels {
		if !slices.ContainsFunc(ls, func(l *dto.LabelPair) bool { return l.GetName() == e.GetName() }) {
			ls = append(ls, e)
		}
	}
	slices.SortFunc(ls, compareLabelPairs)
	return ls
}

// WriteText writes families in the Prometheus text exposition format: HELP
// and TYPE lines, then one series a line with its value.
func WriteText(w io.Writer, mfs []*dto.MetricFamily) error {
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return err
		}
	}
	return nil
}
