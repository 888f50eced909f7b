package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/loadgen"
)

// longRangeConfig is the flags of the longrange command (#15): a week of
// data, then a Grafana dashboard over the whole week refreshed as new data
// comes in.
type longRangeConfig struct {
	compare       compareConfig // binaries and work directory
	fluxpulseArgs string
	series        int
	span          time.Duration
	interval      time.Duration
	refreshes     int
	maxPoints     int
	senders       int
	perRequest    int
	window        int
}

func longRangeCmd(args []string) error {
	var c longRangeConfig
	fs := flag.NewFlagSet("longrange", flag.ContinueOnError)
	fs.StringVar(&c.compare.prometheus, "prometheus", "", "Prometheus binary (3.16).")
	fs.StringVar(&c.compare.fluxpulse, "fluxpulse", "", "FluxPulse binary.")
	fs.StringVar(&c.compare.work, "work-dir", "", "Directory for the receivers' data (default: a temporary directory).")
	fs.StringVar(&c.fluxpulseArgs, "fluxpulse-args", "", "Further flags for FluxPulse, space-separated (for example the query frontend's).")
	fs.IntVar(&c.series, "series", 10_000, "Series (node_exporter-like, 129 a host).")
	fs.DurationVar(&c.span, "range", 7*24*time.Hour, "Time range of the data pushed first and of the dashboard.")
	fs.DurationVar(&c.interval, "interval", time.Minute, "Time between a series' samples (the scrape interval).")
	fs.IntVar(&c.refreshes, "refreshes", 20, "Dashboard refreshes; before each but the first, one more interval of data is pushed and the dashboard's end moves on by one interval.")
	fs.IntVar(&c.maxPoints, "max-data-points", 1000, "Grafana's max data points of a panel; the step is the range divided by it, rounded as Grafana rounds intervals.")
	fs.IntVar(&c.senders, "senders", 4, "Concurrent senders.")
	fs.IntVar(&c.perRequest, "series-per-request", 100, "Series per push request.")
	fs.IntVar(&c.window, "samples-per-series", 30, "Samples of each series per push request; every sender finishes one such window of time before any starts the next, so samples arrive in time order.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.compare.prometheus == "" || c.compare.fluxpulse == "" {
		return errors.New("-prometheus and -fluxpulse are required")
	}
	if c.interval <= 0 || c.span < c.interval || c.refreshes < 2 || c.maxPoints <= 0 || c.window <= 0 || c.perRequest <= 0 || c.senders <= 0 {
		return errors.New("-range must hold at least one -interval, -refreshes must be at least 2 and the counts positive")
	}
	if c.window > int(time.Hour/c.interval) {
		return fmt.Errorf("-samples-per-series %d spans more than an hour of data at -interval %s: Prometheus refuses samples more than an hour older than its newest", c.window, c.interval)
	}
	if c.compare.work == "" {
		var err error
		if c.compare.work, err = os.MkdirTemp("", "fluxpulse-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(c.compare.work)
	}
	lr, err := c.run()
	if lr != nil {
		lr.print(os.Stdout, c)
	}
	return err
}

// lrTarget is one receiver of the longrange command.
type lrTarget struct {
	r     *receiver
	pl    *plan // for send: path, protocol, auth
	query string
	stats lrStats
}

// lrStats are the latencies of one receiver's refreshes.
type lrStats struct {
	total []time.Duration            // per refresh
	panel map[string][]time.Duration // per panel, per refresh
}

// lrResult is what longrange measured.
type lrResult struct {
	targets    []*lrTarget
	step       time.Duration
	samples    int
	compared   int
	mismatches []string
}

func (c longRangeConfig) run() (*lrResult, error) {
	series := seriesOf(loadConfig{SeriesPerTenant: c.series}, 0, 0)
	rounds := int(c.span / c.interval)
	iv := c.interval.Milliseconds()
	// The data ends refreshes intervals ago, so that the last refresh's new
	// data is not in the future either.
	last := time.Now().Add(-time.Duration(c.refreshes) * c.interval).Truncate(c.interval).UnixMilli()
	base := last - int64(rounds-1)*iv
	lr := &lrResult{step: grafanaStep(c.span, c.maxPoints)}
	fpArgs := strings.Fields(c.fluxpulseArgs)
	for _, kind := range []string{"fluxpulse", "prometheus"} {
		var extra []string
		if kind == "fluxpulse" {
			extra = fpArgs
		}
		r, err := c.compare.startReceiver(kind, kind, extra)
		if err != nil {
			return nil, err
		}
		defer r.stop()
		push, _, query := r.paths()
		t := &lrTarget{r: r, query: r.url() + query + "/api/v1/query_range", stats: lrStats{panel: map[string][]time.Duration{}}}
		t.pl = &plan{cfg: loadConfig{URL: r.url(), Path: push, Protocol: 1, Auth: "header"}}
		if kind == "prometheus" {
			t.pl.cfg.Auth = "none"
		}
		lr.targets = append(lr.targets, t)
	}
	fmt.Fprintf(os.Stderr, "== pushing %d series × %d samples (%s at %s) to both receivers…\n", len(series), rounds, c.span, c.interval)
	t0 := time.Now()
	if err := c.pushSpan(lr, series, 0, rounds, base); err != nil {
		return lr, err
	}
	fmt.Fprintf(os.Stderr, "== pushed %d samples in %s; waiting for both receivers to go quiet…\n", lr.samples, time.Since(t0).Round(time.Second))
	settle(lr.targets)
	for i := range c.refreshes {
		if i > 0 {
			if err := c.pushSpan(lr, series, rounds-1+i, rounds+i, base); err != nil {
				return lr, err
			}
		}
		end := time.UnixMilli(base + int64(rounds-1+i)*iv)
		if err := c.refresh(lr, end, i); err != nil {
			return lr, err
		}
	}
	return lr, nil
}

// pushSpan pushes rounds r0 to r1-1 of every series to every target, one
// window of c.window rounds at a time.
func (c longRangeConfig) pushSpan(lr *lrResult, series []labels.Labels, r0, r1 int, base int64) error {
	iv := c.interval.Milliseconds()
	report := r0
	for w := r0; w < r1; w += c.window {
		wEnd := min(w+c.window, r1)
		firsts := make(chan int)
		errc := make(chan error, c.senders)
		var wg sync.WaitGroup
		for range c.senders {
			wg.Go(func() {
				for first := range firsts {
					end := min(first+c.perRequest, len(series))
					j := &job{tenant: tenantName(0), body: loadgen.EncodeSpan(series[first:end], first, w, wEnd, base, iv), samples: (end - first) * (wEnd - w)}
					for _, t := range lr.targets {
						if status, msg := t.pl.send(client, t.r.url(), j); status != http.StatusNoContent && status != http.StatusOK {
							errc <- fmt.Errorf("push to %s: %d %s", t.r.kind, status, msg)
							return
						}
					}
				}
			})
		}
		var err error
	feed:
		for first := 0; first < len(series); first += c.perRequest {
			select {
			case firsts <- first:
			case err = <-errc:
				break feed
			}
		}
		close(firsts)
		wg.Wait()
		if err == nil && len(errc) > 0 {
			err = <-errc
		}
		if err != nil {
			return err
		}
		lr.samples += len(series) * (wEnd - w)
		if w-report >= int(24*time.Hour/c.interval) {
			fmt.Fprintf(os.Stderr, "   … %s of data pushed\n", time.Duration(wEnd-r0)*c.interval)
			report = w
		}
	}
	return nil
}

// settle waits until the receivers use less than a tenth of a core over 3
// seconds (compactions and block uploads done), 5 minutes at most.
func settle(ts []*lrTarget) {
	deadline := time.Now().Add(5 * time.Minute)
	var pids []int
	for _, t := range ts {
		pids = append(pids, t.r.cmd.Process.Pid)
	}
	for time.Now().Before(deadline) {
		c0, _, err := usageOf(pids)
		time.Sleep(3 * time.Second)
		c1, _, err1 := usageOf(pids)
		if err != nil || err1 != nil || (c1-c0)/3 < 0.1 {
			return
		}
	}
}

// refresh runs the dashboard once on every target (in an order that
// alternates between refreshes) and compares their answers.
func (c longRangeConfig) refresh(lr *lrResult, end time.Time, i int) error {
	step := lr.step
	// Grafana aligns the range to the step and uses $__rate_interval, at
	// least four scrape intervals, for rate windows.
	from := end.Add(-c.span).Truncate(step)
	to := end.Truncate(step)
	rateIv := max(step+c.interval, 4*c.interval)
	answers := make([][][]json.RawMessage, len(lr.targets))
	for k := range lr.targets {
		t := lr.targets[(k+i)%len(lr.targets)]
		answers[(k+i)%len(lr.targets)] = make([][]json.RawMessage, len(dashboardQueries))
		t0 := time.Now()
		for qi, q := range dashboardQueries {
			expr := strings.ReplaceAll(q.expr, "[1m]", "["+promDuration(rateIv)+"]")
			v := url.Values{"query": {expr}, "start": {unix(from)}, "end": {unix(to)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
			q0 := time.Now()
			res, err := queryRange(client, t.query, v, t.pl.cfg.Auth, tenantName(0))
			if err != nil {
				return fmt.Errorf("refresh %d, %s, %s: %w", i+1, t.r.kind, q.name, err)
			}
			t.stats.panel[q.name] = append(t.stats.panel[q.name], time.Since(q0))
			answers[(k+i)%len(lr.targets)][qi] = res
		}
		t.stats.total = append(t.stats.total, time.Since(t0))
	}
	for qi, q := range dashboardQueries {
		lr.compared++
		if err := sameMatrix(answers[0][qi], answers[1][qi], strings.HasPrefix(q.expr, "topk")); err != nil {
			lr.mismatches = append(lr.mismatches, fmt.Sprintf("refresh %d, %s: %v", i+1, q.name, err))
		}
	}
	fmt.Fprintf(os.Stderr, "   refresh %d: %s %s, %s %s\n", i+1, lr.targets[0].r.kind, ms(lr.targets[0].stats.total[i]),
		lr.targets[1].r.kind, ms(lr.targets[1].stats.total[i]))
	return nil
}

// grafanaStep is the step Grafana gives a panel over span with maxPoints
// points: span/maxPoints rounded to a nice interval as Grafana's
// roundInterval rounds it, at least 1ms.
func grafanaStep(span time.Duration, maxPoints int) time.Duration {
	raw := span / time.Duration(maxPoints)
	for _, r := range []struct{ upTo, to time.Duration }{
		{10 * time.Millisecond, time.Millisecond}, {15 * time.Millisecond, 10 * time.Millisecond},
		{35 * time.Millisecond, 20 * time.Millisecond}, {75 * time.Millisecond, 50 * time.Millisecond},
		{150 * time.Millisecond, 100 * time.Millisecond}, {350 * time.Millisecond, 200 * time.Millisecond},
		{750 * time.Millisecond, 500 * time.Millisecond}, {1500 * time.Millisecond, time.Second},
		{3500 * time.Millisecond, 2 * time.Second}, {7500 * time.Millisecond, 5 * time.Second},
		{12500 * time.Millisecond, 10 * time.Second}, {17500 * time.Millisecond, 15 * time.Second},
		{25 * time.Second, 20 * time.Second}, {45 * time.Second, 30 * time.Second},
		{90 * time.Second, time.Minute}, {210 * time.Second, 2 * time.Minute},
		{450 * time.Second, 5 * time.Minute}, {750 * time.Second, 10 * time.Minute},
		{1050 * time.Second, 15 * time.Minute}, {1500 * time.Second, 20 * time.Minute},
		{2700 * time.Second, 30 * time.Minute}, {5400 * time.Second, time.Hour},
		{12600 * time.Second, 2 * time.Hour}, {27000 * time.Second, 5 * time.Hour},
		{45000 * time.Second, 10 * time.Hour}, {63000 * time.Second, 15 * time.Hour},
	} {
		if raw <= r.upTo {
			return r.to
		}
	}
	return 24 * time.Hour
}

// promDuration writes d as PromQL does (11m, 90s, 2h).
func promDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d%time.Second == 0:
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Millisecond)) + "ms"
}

// print writes the latency table: the first refresh and the warm ones (all
// after the first), FluxPulse against Prometheus, then per panel.
func (lr *lrResult) print(w io.Writer, c longRangeConfig) {
	if len(lr.targets) != 2 || len(lr.targets[0].stats.total) < 2 {
		return
	}
	f, p := lr.targets[0].stats, lr.targets[1].stats
	fmt.Fprintf(w, "%d series, %s at %s (%d samples pushed), dashboard of %d panels over %s at a %s step, %d refreshes\n\n",
		c.series, c.span, c.interval, lr.samples, len(dashboardQueries), c.span, lr.step, len(f.total))
	fmt.Fprintln(w, "| whole dashboard, ms | FluxPulse | Prometheus | Prometheus / FluxPulse |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(name string, a, b time.Duration) {
		fmt.Fprintf(w, "| %s | %s | %s | %.2f× |\n", name, ms(a), ms(b), float64(b)/float64(a))
	}
	row("first refresh", f.total[0], p.total[0])
	row("warm refresh p50", percentile(f.total[1:], 0.5), percentile(p.total[1:], 0.5))
	row("warm refresh p99", percentile(f.total[1:], 0.99), percentile(p.total[1:], 0.99))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| panel, ms | FluxPulse first | Prometheus first | FluxPulse warm p50 | Prometheus warm p50 |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, q := range dashboardQueries {
		fl, pl := f.panel[q.name], p.panel[q.name]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", q.name, ms(fl[0]), ms(pl[0]), ms(percentile(fl[1:], 0.5)), ms(percentile(pl[1:], 0.5)))
	}
	fmt.Fprintln(w)
	if len(lr.mismatches) == 0 {
		fmt.Fprintf(w, "Answers: FluxPulse's equal Prometheus's in all %d panel queries.\n", lr.compared)
		return
	}
	fmt.Fprintf(w, "Answers: %d of %d panel queries DIFFER; the first: %s\n", len(lr.mismatches), lr.compared, lr.mismatches[0])
}
