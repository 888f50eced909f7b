package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/loadgen"
)

// loadConfig describes one push load.
type loadConfig struct {
	URL             string // base URL of the receiver; comma-separated URLs spread the senders over several
	Path            string // push path
	Protocol        int    // 1 or 2
	Tenants         int
	SeriesPerTenant int
	Rounds          int
	Senders         int
	Batch           int           // samples per request
	Interval        time.Duration // between the timestamps of two rounds
	Rate            float64       // samples per second over all senders; 0: as fast as possible
	ChurnEvery      int           // rounds between churns; 0: no churn
	ChurnFraction   float64       // share of hosts replaced at each churn
	Auth            string        // "header": X-Scope-OrgID; "none"; "bearer:<token>"
	Warmup          bool          // push one unmeasured round first: tenants and series exist before the clock starts
}

// tenantName is the tenant of index k.
func tenantName(k int) string { return fmt.Sprintf("bench-%04d", k) }

// plan is the pre-computed load: every request encoded before the clock
// starts, each owned by one sender so that every series' samples go out in
// order.
type plan struct {
	cfg      loadConfig
	warm     *plan // the warm-up round, pushed before the measured rounds
	base     int64 // timestamp of round 0, ms
	tenants  []tenantPlan
	bySender [][]*job
	samples  int
}

type tenantPlan struct {
	name   string
	series [][]labels.Labels // by generation
}

type job struct {
	tenant  string
	body    []byte
	samples int
}

// seriesOf returns the series of a tenant for a churn generation: the same
// positions, with the instance label of a share of hosts renamed.
func seriesOf(cfg loadConfig, tenant, gen int) []labels.Labels {
	host := loadgen.DefaultHost
	perHost := len(host.Series("x"))
	hosts := (cfg.SeriesPerTenant + perHost - 1) / perHost
	churned := int(float64(hosts) * cfg.ChurnFraction)
	var out []labels.Labels
	for h := 0; h < hosts && len(out) < cfg.SeriesPerTenant; h++ {
		name := fmt.Sprintf("t%04d-host-%05d:9100", tenant, h)
		if h < churned && gen > 0 {
			name = fmt.Sprintf("t%04d-host-%05d-g%d:9100", tenant, h, gen)
		}
		ss := host.Series(name)
		out = append(out, ss[:min(len(ss), cfg.SeriesPerTenant-len(out))]...)
	}
	return out
}

func (cfg loadConfig) generation(round int) int {
	if cfg.ChurnEvery <= 0 {
		return 0
	}
	return round / cfg.ChurnEvery
}

// newPlan encodes every request. Requests of one tenant hold up to Batch
// samples: Batch series of one round, or, for tenants with fewer series,
// several consecutive rounds of all of them (one series entry per round, in
// round order, which keeps every series' samples in time order).
func newPlan(cfg loadConfig) *plan {
	base := time.Now().Add(-time.Duration(cfg.Rounds+2) * cfg.Interval).Truncate(time.Second).UnixMilli()
	p := encodePlan(cfg, base)
	if cfg.Warmup {
		w := cfg
		w.Rounds, w.Warmup, w.ChurnEvery = 1, false, 0
		p.warm = encodePlan(w, base-cfg.Interval.Milliseconds())
	}
	return p
}

func encodePlan(cfg loadConfig, base int64) *plan {
	p := &plan{cfg: cfg, bySender: make([][]*job, cfg.Senders), base: base}
	owner := 0 // round-robin owner of each chunk of series
	for t := range cfg.Tenants {
		tp := tenantPlan{name: tenantName(t)}
		for g := 0; g <= cfg.generation(cfg.Rounds-1); g++ {
			tp.series = append(tp.series, seriesOf(cfg, t, g))
		}
		p.tenants = append(p.tenants, tp)
		n := len(tp.series[0])
		chunk := min(cfg.Batch, n)
		roundsPer := max(1, cfg.Batch/n)
		for first := 0; first < n; first += chunk {
			end := min(first+chunk, n)
			s := owner % cfg.Senders
			owner++
			for r := 0; r < cfg.Rounds; r += roundsPer {
				var ls []labels.Labels
				var rounds []int
				for rr := r; rr < min(r+roundsPer, cfg.Rounds); rr++ {
					for _, l := range tp.series[cfg.generation(rr)][first:end] {
						ls = append(ls, l)
						rounds = append(rounds, rr)
					}
				}
				body := loadgen.EncodeRounds(ls, first, end-first, rounds, p.base, cfg.Interval.Milliseconds(), cfg.Protocol)
				p.bySender[s] = append(p.bySender[s], &job{tenant: tp.name, body: body, samples: len(ls)})
				p.samples += len(ls)
			}
		}
	}
	return p
}

// pushStats is what a push run measured.
type pushStats struct {
	samples   int
	requests  int
	failures  int
	firstErr  string
	wall      time.Duration
	latencies []time.Duration
}

// push sends every job, Senders at a time, paced to cfg.Rate if set.
func (p *plan) push(client *http.Client) pushStats {
	var (
		mu    sync.Mutex
		st    pushStats
		sent  atomic.Int64
		wg    sync.WaitGroup
		start = time.Now()
	)
	urls := strings.Split(p.cfg.URL, ",")
	for sender, jobs := range p.bySender {
		url := urls[sender%len(urls)]
		wg.Go(func() {
			lat := make([]time.Duration, 0, len(jobs))
			fails, first := 0, ""
			for _, j := range jobs {
				if p.cfg.Rate > 0 {
					due := start.Add(time.Duration(float64(sent.Load()) / p.cfg.Rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				t0 := time.Now()
				status, msg := p.send(client, url, j)
				lat = append(lat, time.Since(t0))
				sent.Add(int64(j.samples))
				if status != http.StatusNoContent && status != http.StatusOK {
					fails++
					if first == "" {
						first = fmt.Sprintf("%d %s", status, msg)
					}
				}
			}
			mu.Lock()
			st.latencies = append(st.latencies, lat...)
			st.requests += len(jobs)
			st.failures += fails
			if st.firstErr == "" {
				st.firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	st.wall = time.Since(start)
	st.samples = p.samples
	return st
}

func (p *plan) send(client *http.Client, url string, j *job) (int, string) {
	req, err := http.NewRequest(http.MethodPost, url+p.cfg.Path, bytes.NewReader(j.body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Encoding", "snappy")
	if p.cfg.Protocol == 2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	setAuth(req, p.cfg.Auth, j.tenant)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(b)
}

func setAuth(req *http.Request, auth, tenant string) {
	switch {
	case auth == "header":
		req.Header.Set("X-Scope-OrgID", tenant)
	case len(auth) > 7 && auth[:7] == "bearer:":
		req.Header.Set("Authorization", "Bearer "+auth[7:])
	}
}

// percentile returns the q-quantile of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}
