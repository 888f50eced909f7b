package main

import (
	"fmt"
	"io"
)

// result is one measured load.
type result struct {
	name      string
	kind      string // of compare: "prometheus" or "fluxpulse"
	scenario  string // of compare: protocol and shape of load
	cfg       loadConfig
	push      pushStats
	cpu       float64 // receiver CPU seconds during the push
	rssBefore int64
	rssAfter  int64
	series    int
	verified  bool
	verifyErr error
	queries   queryStats
}

// measure pushes the plan and reads the receivers' CPU and memory around
// it, summed over every process given.
func measure(p *plan, pids ...int) (result, error) { return measureWith(p, nil, pids...) }

// measureWith is measure calling started, if not nil, once the measured
// push begins (after the warm-up), and the function it returns once the
// push is over.
func measureWith(p *plan, started func() func(), pids ...int) (result, error) {
	r := result{cfg: p.cfg, series: p.distinctSeries()}
	if p.warm != nil {
		p.warm.cfg.URL, p.warm.cfg.Path, p.warm.cfg.Auth = p.cfg.URL, p.cfg.Path, p.cfg.Auth
		if st := p.warm.push(client); st.failures > 0 {
			return r, fmt.Errorf("warm-up: %d requests refused: %s", st.failures, st.firstErr)
		}
	}
	cpu0, rss0, err := usageOf(pids)
	if err != nil {
		return r, err
	}
	r.rssBefore = rss0
	if started != nil {
		defer started()()
	}
	r.push = p.push(client)
	cpu1, rss1, err := usageOf(pids)
	if err != nil {
		return r, err
	}
	r.cpu, r.rssAfter = cpu1-cpu0, rss1
	return r, nil
}

// distinctSeries counts the series the plan sends: each generation of a
// tenant's series holds them all, most of them those of the generation
// before, so a churning plan's count is not the sum of the generations'.
func (p *plan) distinctSeries() int {
	n := 0
	for _, tp := range p.tenants {
		if len(tp.series) == 1 {
			n += len(tp.series[0])
			continue
		}
		seen := map[uint64]struct{}{}
		for _, gen := range tp.series {
			for _, ls := range gen {
				seen[ls.Hash()] = struct{}{}
			}
		}
		n += len(seen)
	}
	return n
}

// usageOf sums the CPU seconds and resident memory of processes.
func usageOf(pids []int) (cpu float64, rss int64, err error) {
	for _, pid := range pids {
		c, err := procCPU(pid)
		if err != nil {
			return 0, 0, err
		}
		m, err := procRSS(pid)
		if err != nil {
			return 0, 0, err
		}
		cpu, rss = cpu+c, rss+m
	}
	return cpu, rss, nil
}

func (r result) samplesPerSecond() float64 { return float64(r.push.samples) / r.push.wall.Seconds() }
func (r result) samplesPerCPU() float64 {
	if r.cpu == 0 {
		return 0
	}
	return float64(r.push.samples) / r.cpu
}
func (r result) bytesPerSeries() float64 { return float64(r.rssAfter) / float64(r.series) }
func (r result) cpuUse() float64         { return r.cpu / r.push.wall.Seconds() }

func (r result) verdict() string {
	switch {
	case !r.verified:
		return "not checked"
	case r.verifyErr != nil:
		return "FAILED: " + r.verifyErr.Error()
	case r.push.failures > 0:
		return fmt.Sprintf("FAILED: %d requests refused (%s)", r.push.failures, r.push.firstErr)
	}
	return "every sample read back"
}

// printResults writes a Markdown table of push figures, then one of query
// latencies.
func printResults(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| run | series | samples | samples/s | receiver CPU s | CPU use (cores) | samples per CPU second | RSS after | RSS per series | push p50 ms | push p99 ms | verification |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.push.samples == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.2f | %.2f | %.0f | %.0f MiB | %.0f B | %s | %s | %s |\n",
			r.name, r.series, r.push.samples, r.samplesPerSecond(), r.cpu, r.cpuUse(), r.samplesPerCPU(),
			float64(r.rssAfter)/(1<<20), r.bytesPerSeries(), ms(percentile(r.push.latencies, 0.5)),
			ms(percentile(r.push.latencies, 0.99)), r.verdict())
	}
	var withQ []result
	for _, r := range rs {
		if len(r.queries.total) > 0 {
			withQ = append(withQ, r)
		}
	}
	if len(withQ) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "| query (median of refreshes, ms) |")
	for _, r := range withQ {
		fmt.Fprintf(w, " %s |", r.name)
	}
	fmt.Fprint(w, "\n|---|")
	for range withQ {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, q := range dashboardQueries {
		fmt.Fprintf(w, "| %s |", q.name)
		for _, r := range withQ {
			fmt.Fprintf(w, " %s |", ms(percentile(r.queries.lat[q.name], 0.5)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| whole dashboard |")
	for _, r := range withQ {
		cell := ms(percentile(r.queries.total, 0.5))
		if r.queries.err != nil {
			cell += " (error: " + r.queries.err.Error() + ")"
		}
		fmt.Fprintf(w, " %s |", cell)
	}
	fmt.Fprintln(w)
}

// printRatios writes, for every scenario compare ran on both receivers,
// FluxPulse's samples per CPU second and memory per series as multiples of
// Prometheus's.
func printRatios(w io.Writer, rs []result) {
	by := map[string]map[string]result{}
	var order []string
	for _, r := range rs {
		if r.scenario == "" || r.push.samples == 0 {
			continue
		}
		if by[r.scenario] == nil {
			by[r.scenario] = map[string]result{}
			order = append(order, r.scenario)
		}
		by[r.scenario][r.kind] = r
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | samples per CPU second, × Prometheus | RSS per series, × Prometheus | both verified |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, sc := range order {
		p, okP := by[sc]["prometheus"]
		f, okF := by[sc]["fluxpulse"]
		if !okP || !okF {
			continue
		}
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %v |\n", sc, f.samplesPerCPU()/p.samplesPerCPU(), f.bytesPerSeries()/p.bytesPerSeries(), f.verified && p.verified)
	}
}
