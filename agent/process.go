package agent

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// commLen is how much of a process name the kernel keeps in
// /proc/<pid>/comm (TASK_COMM_LEN minus the terminating NUL).
const commLen = 15

// processCollector reports, for each configured name, whether a process of
// that name runs and how many do. It reads only /proc/<pid>/comm, the
// kernel's short process name: never the command line, environment or any
// other process data, and it never reports names nobody asked for.
type processCollector struct {
	procPath string
	names    []string
	byComm   map[string][]string // comm -> configured names it matches
	up       *prometheus.Desc
	count    *prometheus.Desc
}

func newProcessCollector(procPath string, names []string) *processCollector {
	p := &processCollector{
		procPath: procPath,
		names:    names,
		byComm:   map[string][]string{},
		up: prometheus.NewDesc(ProcessUpMetric,
			"1 if at least one process with this name runs, else 0 (names from -process).", []string{"process"}, nil),
		count: prometheus.NewDesc(ProcessesMetric,
			"Number of processes with this name (names from -process).", []string{"process"}, nil),
	}
	for _, n := range names {
		comm := n
		if len(comm) > commLen {
			comm = comm[:commLen]
		}
		p.byComm[comm] = append(p.byComm[comm], n)
	}
	return p
}

// Describe implements prometheus.Collector.
func (p *processCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.up
	ch <- p.count
}

// Collect implements prometheus.Collector.
func (p *processCollector) Collect(ch chan<- prometheus.Metric) {
	if len(p.names) == 0 {
		return
	}
	counts, err := p.countByName()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(p.up, err)
		return
	}
	for _, n := range p.names {
		up := 0.0
		if counts[n] > 0 {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(p.up, prometheus.GaugeValue, up, n)
		ch <- prometheus.MustNewConstMetric(p.count, prometheus.GaugeValue, float64(counts[n]), n)
	}
}

// countByName counts the processes (thread-group leaders: /proc lists no
// other threads) whose comm matches a configured name.
func (p *processCollector) countByName() (map[string]int, error) {
	entries, err := os.ReadDir(p.procPath)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(p.names))
	for _, e := range entries {
		if !isPID(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.procPath, e.Name(), "comm"))
		if err != nil {
			continue // the process has ended
		}
		for _, n := range p.byComm[string(bytes.TrimSuffix(b, []byte("\n")))] {
			counts[n]++
		}
	}
	return counts, nil
}

func isPID(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
