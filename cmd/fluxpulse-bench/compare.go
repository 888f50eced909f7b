package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// receiver is a Prometheus or FluxPulse process started for one run.
type receiver struct {
	kind     string // "prometheus" or "fluxpulse"
	bin      string
	dir      string
	addr     string
	internal string // FluxPulse's operator listener; empty: none
	args     []string
	cmd      *exec.Cmd
	log      *os.File
}

func (r *receiver) url() string { return "http://" + r.addr }

// paths returns the push, remote-read and query API paths of the receiver.
func (r *receiver) paths() (push, read, query string) {
	if r.kind == "prometheus" {
		return "/api/v1/write", "/api/v1/read", ""
	}
	return "/api/v1/push", "/prometheus/api/v1/read", "/prometheus"
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (r *receiver) start() error {
	args := append([]string{}, r.args...)
	switch r.kind {
	case "prometheus":
		cfg := filepath.Join(r.dir, "prometheus.yml")
		if err := os.WriteFile(cfg, []byte("global: {}\n"), 0o644); err != nil {
			return err
		}
		args = append(args, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(r.dir, "data"),
			"--web.listen-address="+r.addr, "--web.enable-remote-write-receiver")
	default:
		args = append(args, "-data.dir", filepath.Join(r.dir, "data"), "-server.http-listen-address", r.addr,
			"-server.internal-listen-address="+r.internal, "-auth.mode=header", "-distributor.ingestion-rate-limit=0", "-ingester.max-series-per-tenant=0",
			"-ingester.max-tenants=5000", "-querier.max-concurrent-queries=0")
	}
	var err error
	if r.log, err = os.OpenFile(filepath.Join(r.dir, r.kind+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return err
	}
	r.cmd = exec.Command(r.bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		return err
	}
	ready := "/ready"
	if r.kind == "prometheus" {
		ready = "/-/ready"
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(r.url() + ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not become ready; see %s", r.kind, r.log.Name())
}

func (r *receiver) stop() error {
	if r.cmd == nil || r.cmd.Process == nil {
		return nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		r.log.Close()
		return err
	case <-time.After(3 * time.Minute):
		_ = r.cmd.Process.Kill()
		return errors.New(r.kind + " did not stop within 3 minutes")
	}
}

// compareConfig is the flags of the compare command.
type compareConfig struct {
	load        loadConfig
	prometheus  string
	fluxpulse   string
	work        string
	manyTenants int
	repeats     int
	runs        int
	scenarios   []string
}

// scenarios are the shapes of load compare runs.
var scenarios = map[string]func(loadConfig) loadConfig{
	// steady: the series exist (a warm-up round created them); the
	// measured rounds only append.
	"steady": func(c loadConfig) loadConfig { c.Warmup = true; return c },
	// cold: no warm-up, every series is created during the measurement.
	"cold": func(c loadConfig) loadConfig { c.Warmup, c.ChurnEvery = false, 0; return c },
	// churn: 10% of the hosts replaced every 2 rounds, over 20 rounds, as
	// pods come and go.
	"churn": func(c loadConfig) loadConfig {
		c.Warmup, c.ChurnEvery, c.ChurnFraction, c.Rounds = true, 2, 0.1, 20
		return c
	},
}

// parseScenarios reads the -scenarios flag.
func parseScenarios(list string) ([]string, error) {
	var out []string
	for _, sc := range strings.Split(list, ",") {
		if _, ok := scenarios[sc]; !ok {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (steady, cold, churn)", sc)
		}
		out = append(out, sc)
	}
	return out, nil
}

func compareCmd(args []string) error {
	var c compareConfig
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	c.load.registerFlags(fs)
	fs.StringVar(&c.prometheus, "prometheus", "", "Prometheus binary (3.16).")
	fs.StringVar(&c.fluxpulse, "fluxpulse", "", "FluxPulse binary.")
	fs.StringVar(&c.work, "work-dir", "", "Directory for the receivers' data (default: a temporary directory).")
	fs.IntVar(&c.manyTenants, "many-tenants", 1000, "Tenants of the multi-tenant run, sharing -series between them.")
	fs.IntVar(&c.repeats, "query-repeats", 5, "Dashboard refreshes timed per run.")
	fs.IntVar(&c.runs, "runs", 1, "Runs of each scenario; the one with the median samples per CPU second is reported.")
	list := fs.String("scenarios", "steady,cold,churn", "Shapes of load, comma-separated: steady (series exist; with the bucket, many-tenants and paced runs), cold (every series new), churn (10% of hosts replaced every 2 rounds over 20 rounds).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.scenarios, err = parseScenarios(*list); err != nil {
		return err
	}
	if c.prometheus == "" || c.fluxpulse == "" {
		return errors.New("-prometheus and -fluxpulse are required")
	}
	if c.work == "" {
		var err error
		if c.work, err = os.MkdirTemp("", "fluxpulse-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(c.work)
	}
	rs, err := c.run()
	printResults(os.Stdout, rs)
	printRatios(os.Stdout, rs)
	return err
}

// run does every scenario, each with a fresh receiver, one at a time.
func (c compareConfig) run() ([]result, error) {
	var rs []result
	once := func(name, kind string, cfg loadConfig, extra []string, keep bool) (result, *receiver, *plan, error) {
		fmt.Fprintf(os.Stderr, "== %s: encoding %d tenants × %d series × %d rounds (protocol %d)…\n", name, cfg.Tenants, cfg.SeriesPerTenant, cfg.Rounds, cfg.Protocol)
		p := newPlan(cfg)
		runtime.GC()
		r, err := c.startReceiver(name, kind, extra)
		if err != nil {
			return result{}, nil, nil, err
		}
		res, err := c.load1(name, r, p)
		if err != nil || !keep {
			return res, nil, p, errors.Join(err, r.stop())
		}
		return res, r, p, nil
	}
	// one runs a scenario c.runs times and keeps the median run.
	one := func(name, kind string, cfg loadConfig, extra []string, keep bool) (result, *receiver, *plan, error) {
		type run struct {
			res result
			r   *receiver
			p   *plan
		}
		var all []run
		for range max(1, c.runs) {
			res, r, p, err := once(name, kind, cfg, extra, keep)
			if err != nil {
				return res, r, p, err
			}
			all = append(all, run{res, r, p})
		}
		sort.Slice(all, func(i, j int) bool { return all[i].res.samplesPerCPU() < all[j].res.samplesPerCPU() })
		mid := all[len(all)/2]
		for _, o := range all {
			if o.r != nil && o.r != mid.r {
				_ = o.r.stop()
			}
		}
		return mid.res, mid.r, mid.p, nil
	}
	base := c.load
	base.Tenants = 1
	for _, sc := range c.scenarios {
		for _, proto := range []int{1, 2} {
			cfg := scenarios[sc](base)
			cfg.Protocol = proto
			for _, kind := range []string{"prometheus", "fluxpulse"} {
				keep := kind == "fluxpulse" && proto == 1 && sc == "steady"
				var extra []string
				if keep { // its data goes to the bucket when it stops, for the bucket queries
					extra = []string{"-ingester.flush-on-shutdown"}
				}
				res, r, p, err := one(fmt.Sprintf("%s, RW %d.0, %s", kind, proto, sc), kind, cfg, extra, keep)
				res.kind, res.scenario = kind, fmt.Sprintf("RW %d.0, %s", proto, sc)
				rs = append(rs, res)
				if err != nil {
					return rs, err
				}
				if r != nil {
					bucket, err := c.bucketQueries(r, p)
					rs = append(rs, bucket...)
					if err != nil {
						return rs, err
					}
				}
			}
		}
	}
	if !slices.Contains(c.scenarios, "steady") {
		return rs, nil
	}
	many := base
	many.Tenants = c.manyTenants
	many.SeriesPerTenant = max(1, base.SeriesPerTenant/c.manyTenants)
	res, _, _, err := one(fmt.Sprintf("fluxpulse, RW 1.0, %d tenants × %d series", many.Tenants, many.SeriesPerTenant), "fluxpulse", many, nil, false)
	if err != nil {
		return rs, err
	}
	rs = append(rs, res)
	// Push latency with the receiver at about 70% of the machine's CPU: a
	// first paced run calibrates the rate, the second is reported.
	fp := rs[slices.IndexFunc(rs, func(r result) bool { return r.kind == "fluxpulse" && r.scenario == "RW 1.0, steady" })]
	paced := base
	target := 0.7 * float64(runtime.NumCPU())
	paced.Rate = target * fp.samplesPerCPU()
	for range 2 {
		res, _, _, err = once(fmt.Sprintf("fluxpulse, RW 1.0, paced at %.0f samples/s", paced.Rate), "fluxpulse", paced, nil, false)
		if err != nil {
			break
		}
		if u := res.cpuUse(); u > 0 {
			paced.Rate *= target / u
		}
	}
	rs = append(rs, res)
	return rs, err
}

func (c compareConfig) startReceiver(name, kind string, extra []string) (*receiver, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.work, strconv.Itoa(int(time.Now().UnixNano())))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := c.fluxpulse
	if kind == "prometheus" {
		bin = c.prometheus
	}
	r := &receiver{kind: kind, bin: bin, dir: dir, addr: addr, args: extra}
	return r, r.start()
}

// load1 pushes, verifies and queries one receiver.
func (c compareConfig) load1(name string, r *receiver, p *plan) (result, error) {
	push, read, query := r.paths()
	p.cfg.URL, p.cfg.Path = r.url(), push
	if r.kind == "prometheus" {
		p.cfg.Auth = "none"
	}
	res, err := measure(p, r.cmd.Process.Pid)
	res.name = name
	if err != nil {
		return res, err
	}
	res.verifyErr = p.verify(client, r.url()+read)
	res.verified = true
	if p.cfg.Rate == 0 && p.cfg.Tenants == 1 {
		res.queries = p.runQueries(client, r.url()+query, tenantName(0), c.repeats)
	}
	return res, nil
}

// bucketQueries ships everything the FluxPulse receiver holds to its
// bucket, restarts it without its local TSDB, and times the dashboard over
// bucket data, with a cold cache and then a warm one.
func (c compareConfig) bucketQueries(r *receiver, p *plan) ([]result, error) {
	if err := r.stop(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(r.dir, "data", "tsdb")); err != nil {
		return nil, err
	}
	if err := r.start(); err != nil {
		return nil, err
	}
	defer r.stop()
	_, _, query := r.paths()
	cold := result{name: "fluxpulse, bucket, first refresh (cold cache)", cfg: p.cfg}
	cold.queries = p.runQueries(client, r.url()+query, tenantName(0), 1)
	warm := result{name: "fluxpulse, bucket, warm cache", cfg: p.cfg}
	warm.queries = p.runQueries(client, r.url()+query, tenantName(0), c.repeats)
	return []result{cold, warm}, nil
}
