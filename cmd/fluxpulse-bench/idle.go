package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// idleCmd measures what idle tenants cost: the receiver's live heap with no
// tenants, after every tenant pushed once, and once the ingester closed the
// idle tenants' TSDBs (-ingester.close-idle-tsdb-timeout), each figure read
// right after a forced garbage collection.
func idleCmd(args []string) error {
	var cfg loadConfig
	var metricsURL string
	var wait time.Duration
	var maxGrowth int64
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	cfg.registerFlags(fs)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:9009", "Receiver base URL.")
	fs.StringVar(&metricsURL, "metrics-url", "http://127.0.0.1:9010", "The receiver's operator listener (/metrics, /debug/pprof).")
	fs.DurationVar(&wait, "wait", 5*time.Minute, "How long to wait for the ingester to close the idle tenants.")
	fs.Int64Var(&maxGrowth, "max-growth", 10<<20, "Fail when the heap after the tenants went idle exceeds the figure with no tenants by more than this many bytes.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	before, err := liveHeap(metricsURL)
	if err != nil {
		return err
	}
	cfg.Warmup = false
	p := newPlan(cfg)
	if st := p.push(client); st.failures > 0 {
		return fmt.Errorf("%d of %d pushes failed, first: %s", st.failures, st.requests, st.firstErr)
	}
	open, err := liveHeap(metricsURL)
	if err != nil {
		return err
	}
	start := time.Now()
	for {
		n, err := metricValue(metricsURL, "fluxpulse_ingester_tenants")
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if time.Since(start) > wait {
			return fmt.Errorf("%v tenants still open after %s: is -ingester.close-idle-tsdb-timeout shorter than -wait?", n, wait)
		}
		time.Sleep(500 * time.Millisecond)
	}
	closed := time.Since(start)
	after, err := liveHeap(metricsURL)
	if err != nil {
		return err
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Printf("| tenants | series each | heap, no tenants | heap, tenants open | heap, tenants closed | growth | closed after |\n|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d | %s | %s | %s | %s | %s |\n", cfg.Tenants, cfg.SeriesPerTenant, mib(before), mib(open), mib(after), mib(after-before), closed.Round(time.Second))
	if after-before > maxGrowth {
		return fmt.Errorf("the heap grew by %s with %d idle tenants, more than -max-growth %s", mib(after-before), cfg.Tenants, mib(maxGrowth))
	}
	fmt.Println("idle tenants cost no more than -max-growth")
	return nil
}

// liveHeap forces a garbage collection in the receiver (through its heap
// profile endpoint) and returns its heap in use afterwards; the smallest of
// three readings, as the runtime's own background work allocates too.
func liveHeap(metricsURL string) (int64, error) {
	best := int64(-1)
	for range 3 {
		resp, err := client.Get(metricsURL + "/debug/pprof/heap?gc=1")
		if err != nil {
			return 0, fmt.Errorf("force a GC: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		v, err := metricValue(metricsURL, "go_memstats_heap_alloc_bytes")
		if err != nil {
			return 0, err
		}
		if best < 0 || int64(v) < best {
			best = int64(v)
		}
	}
	return best, nil
}

// metricValue reads one unlabelled sample from the receiver's /metrics.
func metricValue(metricsURL, name string) (float64, error) {
	resp, err := client.Get(metricsURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: %s", metricsURL, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(name + " not found in " + metricsURL + "/metrics")
}
