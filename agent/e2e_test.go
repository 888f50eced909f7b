package agent_test

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fluxpulse/fluxpulse/agent"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// e2eInterval is the agent's collection interval in the end-to-end tests.
const e2eInterval = 2 * time.Second

// stack is a FluxPulse server and an agent sending to it, both real
// binaries, for one test.
type stack struct {
	t                *testing.T
	server, agentBin string
	dataDir, walDir  string
	addr, agentAddr  string
	tenant, host     string
	token            string        // empty: FluxPulse trusts X-Scope-OrgID (-auth.mode=header)
	interval         time.Duration // of the agent, if not e2eInterval
	fluxpulse, agent *testbin.Process
}

func newStack(t *testing.T, agentArgs ...string) *stack {
	t.Helper()
	s := prepareStack(t)
	s.startServer()
	s.startAgent(agentArgs...)
	return s
}

func prepareStack(t *testing.T) *stack {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return &stack{
		t: t, server: testbin.FluxPulse(t, "fluxpulse"), agentBin: testbin.FluxPulse(t, "fluxpulse-agent"),
		dataDir: t.TempDir(), walDir: t.TempDir(), addr: testbin.FreePort(t), agentAddr: testbin.FreePort(t),
		tenant: "e2e-tenant", host: host,
	}
}

func (s *stack) startServer() {
	s.t.Helper()
	args := []string{"-data.dir", s.dataDir, "-server.http-listen-address", s.addr, "-server.internal-listen-address", testbin.FreePort(s.t)}
	if s.token == "" {
		args = append(args, "-auth.mode=header")
	}
	s.fluxpulse = testbin.Start(s.t, s.server, nil, args...)
	testbin.WaitHTTP(s.t, s.fluxpulse, "http://"+s.addr+"/ready", time.Minute)
}

func (s *stack) startAgent(extra ...string) {
	s.t.Helper()
	args := []string{
		"-remote-write.url", "http://" + s.addr + "/api/v1/push",
		"-scrape.interval", e2eInterval.String(), "-remote-write.max-backoff", "500ms",
		"-wal.dir", s.walDir, "-web.listen-address", s.agentAddr,
	}
	if s.token == "" {
		args = append(args, "-remote-write.tenant", s.tenant)
	} else {
		tokenFile := filepath.Join(s.t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(s.token+"\n"), 0o600); err != nil {
			s.t.Fatal(err)
		}
		args = append(args, "-remote-write.token-file", tokenFile)
	}
	args = append(args, extra...)
	s.agent = testbin.Start(s.t, s.agentBin, nil, args...)
	testbin.WaitHTTP(s.t, s.agent, "http://"+s.agentAddr+"/metrics", time.Minute)
}

// query runs an instant query in tenant and returns the vector or matrix.
func (s *stack) query(tenant, expr string) (model.Value, error) {
	return s.api(tenant, "query", url.Values{"query": {expr}})
}

func (s *stack) api(tenant, endpoint string, params url.Values) (model.Value, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+s.addr+"/prometheus/api/v1/"+endpoint+"?"+params.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", endpoint, params.Get("query"), resp.Status, body)
	}
	var r struct {
		Data struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	var v model.Value
	switch r.Data.ResultType {
	case "vector":
		var vec model.Vector
		err, v = json.Unmarshal(r.Data.Result, &vec), vec
	case "matrix":
		var m model.Matrix
		err, v = json.Unmarshal(r.Data.Result, &m), m
	default:
		return nil, fmt.Errorf("unexpected result type %q", r.Data.ResultType)
	}
	return v, err
}

// agentMetric returns the sum of a family on the agent's /metrics page.
func (s *stack) agentMetric(name string) (float64, error) {
	resp, err := http.Get("http://" + s.agentAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	mf, ok := mfs[name]
	if !ok {
		return 0, fmt.Errorf("%s is not on the agent's /metrics page", name)
	}
	sum := 0.0
	for _, m := range mf.Metric {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return sum, nil
}

// waitCollections waits until the agent has collected n more times.
func (s *stack) waitCollections(n int) {
	s.t.Helper()
	var from float64
	testbin.Eventually(s.t, 30*time.Second, func() (err error) {
		from, err = s.agentMetric("fluxpulse_agent_collections_total")
		return err
	})
	interval := cmp.Or(s.interval, e2eInterval)
	testbin.Eventually(s.t, time.Duration(n+10)*interval, func() error {
		got, err := s.agentMetric("fluxpulse_agent_collections_total")
		if err == nil && got < from+float64(n) {
			err = fmt.Errorf("%v collections, want %v", got, from+float64(n))
		}
		return err
	})
}

// waitHeartbeatAfter waits until FluxPulse has a heartbeat of this host
// collected after t.
func (s *stack) waitHeartbeatAfter(t time.Time) {
	s.t.Helper()
	testbin.Eventually(s.t, 2*time.Minute, func() error {
		v, err := s.query(s.tenant, fmt.Sprintf(`timestamp(%s{instance=%q})`, agent.HeartbeatMetric, s.host))
		if err != nil {
			return err
		}
		if vec := v.(model.Vector); len(vec) != 1 || float64(vec[0].Value) < float64(t.UnixMilli())/1000 {
			return fmt.Errorf("newest heartbeat is %v, want one after %s", vec, t.Format(time.RFC3339Nano))
		}
		return nil
	})
}

// procStatCPUs returns the names of this machine's CPUs from /proc/stat.
func procStatCPUs(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cpus []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		field, _, _ := strings.Cut(sc.Text(), " ")
		if n, ok := strings.CutPrefix(field, "cpu"); ok && n != "" {
			cpus = append(cpus, n)
		}
	}
	return cpus
}

// TestEndToEnd runs the agent against a FluxPulse server and finds this
// machine's metrics in the tenant the agent names, and only there.
func TestEndToEnd(t *testing.T) {
	s := newStack(t, "-process", "fluxpulse,fpnotrunning")
	s.checkHostSeries()
	if v, err := s.query("another-tenant", `count({__name__=~".+"})`); err != nil || len(v.(model.Vector)) != 0 {
		t.Errorf("another tenant sees the agent's series: %v (err %v)", v, err)
	}
	for _, name := range []string{"prometheus_remote_storage_samples_total", "fluxpulse_agent_wal_size_bytes", "fluxpulse_agent_samples_appended_total"} {
		testbin.Eventually(t, 30*time.Second, func() error {
			if v, err := s.agentMetric(name); err != nil || v <= 0 {
				return fmt.Errorf("agent /metrics: %s = %v (err %v), want > 0", name, v, err)
			}
			return nil
		})
	}
	for _, name := range []string{"prometheus_remote_storage_samples_pending", "prometheus_remote_storage_samples_failed_total"} {
		if _, err := s.agentMetric(name); err != nil {
			t.Errorf("agent /metrics: %v", err)
		}
	}
}

// TestEndToEndToken authenticates the agent with a token file against
// FluxPulse in its default token mode.
func TestEndToEndToken(t *testing.T) {
	s := prepareStack(t)
	s.tenant = "acme"
	for _, args := range [][]string{
		{"tenant", "create", "-tenant", s.tenant, "-data.dir", s.dataDir},
		{"token", "create", "-tenant", s.tenant, "-scopes", "write,read", "-data.dir", s.dataDir},
	} {
		out, err := exec.Command(s.server, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("fluxpulse %q: %v\n%s", args, err, out)
		}
		for l := range strings.Lines(string(out)) {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "fp_") {
				s.token = l
			}
		}
	}
	if s.token == "" {
		t.Fatal("fluxpulse token create printed no token")
	}
	s.startServer()
	s.startAgent("-process", "fluxpulse,fpnotrunning")
	s.checkHostSeries()
}

// checkHostSeries waits until FluxPulse has this machine's CPU series for
// every core, then checks that the other series are there too.
func (s *stack) checkHostSeries() {
	t := s.t
	t.Helper()
	sel := fmt.Sprintf(`{instance=%q}`, s.host)
	cpus := procStatCPUs(t)
	testbin.Eventually(t, time.Minute, func() error {
		v, err := s.query(s.tenant, `count by (cpu) (node_cpu_seconds_total`+sel+`)`)
		if err != nil {
			return err
		}
		var got []string
		for _, smp := range v.(model.Vector) {
			got = append(got, string(smp.Metric["cpu"]))
		}
		slices.Sort(got)
		if !slices.Equal(got, cpus) {
			return fmt.Errorf("node_cpu_seconds_total for cpus %q, want every cpu of /proc/stat: %q", got, cpus)
		}
		return nil
	})
	for _, c := range []struct{ name, match, cmp string }{
		{name: "node_memory_MemTotal_bytes"}, {name: "node_memory_MemAvailable_bytes"},
		{name: "node_disk_read_bytes_total"}, {name: "node_disk_written_bytes_total"},
		{name: "node_filesystem_avail_bytes", match: `mountpoint="/"`}, {name: "node_filesystem_size_bytes"},
		{name: "node_network_receive_bytes_total"}, {name: "node_network_transmit_bytes_total"},
		{name: "node_boot_time_seconds"}, {name: "node_time_seconds"}, {name: "node_load1"}, {name: "node_processes_pids"},
		{name: agent.HeartbeatMetric, cmp: "== 1"},
		{name: agent.ProcessUpMetric, match: `process="fluxpulse"`, cmp: "== 1"},
		{name: agent.ProcessesMetric, match: `process="fluxpulse"`, cmp: ">= 1"},
		{name: agent.ProcessUpMetric, match: `process="fpnotrunning"`, cmp: "== 0"},
	} {
		expr := c.name + sel
		if c.match != "" {
			expr = strings.TrimSuffix(expr, "}") + "," + c.match + "}"
		}
		v, err := s.query(s.tenant, expr+" "+c.cmp)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.(model.Vector)) == 0 {
			t.Errorf("%s %s: no series in tenant %s", expr, c.cmp, s.tenant)
		}
	}
}

// checkNoGap checks with a range query that from start to end every step
// of interval/2 sees a sample of each series of sel no older than 1.75
// intervals: one missing collection would make it two. Steps inside
// allowed (the agent's own restart, when nothing is collected) are exempt.
func (s *stack) checkNoGap(sel string, wantSeries int, start, end time.Time, allowed [2]time.Time) {
	s.t.Helper()
	step := e2eInterval / 2
	// The query frontend aligns a range to its step (as Grafana expects):
	// ask for an aligned one, so that the steps counted are the steps asked.
	stepMs := step.Milliseconds()
	start = time.UnixMilli((start.UnixMilli() + stepMs - 1) / stepMs * stepMs)
	end = time.UnixMilli(end.UnixMilli() / stepMs * stepMs)
	v, err := s.api(s.tenant, "query_range", url.Values{
		"query": {"time() - timestamp(" + sel + ")"},
		"start": {fmtTime(start)}, "end": {fmtTime(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	m := v.(model.Matrix)
	if len(m) != wantSeries {
		s.t.Fatalf("%s: %d series, want %d", sel, len(m), wantSeries)
	}
	steps := int(end.Sub(start)/step) + 1
	for _, ss := range m {
		if len(ss.Values) != steps {
			s.t.Errorf("%v: %d of %d steps have a sample", ss.Metric, len(ss.Values), steps)
		}
		for _, p := range ss.Values {
			at := p.Timestamp.Time()
			age := time.Duration(float64(p.Value) * float64(time.Second))
			if age > e2eInterval*7/4 && (at.Before(allowed[0]) || at.After(allowed[1])) {
				s.t.Errorf("%v: at %s the newest sample is %s old: samples are missing", ss.Metric, at.Format(time.RFC3339Nano), age)
			}
		}
	}
}

func fmtTime(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

// checkSeriesNoGap checks the heartbeat, one series per core and a memory
// series for gaps.
func (s *stack) checkSeriesNoGap(start, end time.Time, allowed [2]time.Time) {
	s.t.Helper()
	host := fmt.Sprintf("instance=%q", s.host)
	s.checkNoGap(agent.HeartbeatMetric+"{"+host+"}", 1, start, end, allowed)
	s.checkNoGap(`node_cpu_seconds_total{mode="idle",`+host+"}", len(procStatCPUs(s.t)), start, end, allowed)
	s.checkNoGap("node_memory_MemAvailable_bytes{"+host+"}", 1, start, end, allowed)
}

// TestBackendOutage stops FluxPulse for several collections and starts it
// again on the same data and port: nothing is missing.
func TestBackendOutage(t *testing.T) {
	s := newStack(t)
	s.waitHeartbeatAfter(time.Now())
	start := time.Now()
	s.waitCollections(2)
	if err := s.fluxpulse.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.waitCollections(5)
	testbin.Eventually(t, 30*time.Second, func() error {
		if v, err := s.agentMetric("prometheus_remote_storage_samples_retried_total"); err != nil || v == 0 {
			return fmt.Errorf("the agent has retried nothing (err %v)", err)
		}
		return nil
	})
	s.startServer()
	back := time.Now()
	s.waitHeartbeatAfter(back)
	s.checkSeriesNoGap(start, back, [2]time.Time{})
}

// TestAgentRestartDuringOutage stops FluxPulse, then stops and starts the
// agent, then starts FluxPulse again: what the first run of the agent
// collected arrives too.
func TestAgentRestartDuringOutage(t *testing.T) {
	s := newStack(t, "-remote-write.protocol", "2.0")
	s.waitHeartbeatAfter(time.Now())
	start := time.Now()
	s.waitCollections(2)
	if err := s.fluxpulse.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.waitCollections(4)
	stopped := time.Now()
	if err := s.agent.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.startAgent("-remote-write.protocol", "2.0")
	restarted := time.Now()
	s.waitCollections(3)
	s.startServer()
	back := time.Now()
	s.waitHeartbeatAfter(back)
	s.checkSeriesNoGap(start, back, [2]time.Time{stopped, restarted.Add(e2eInterval * 7 / 4)})
	if v, err := s.agentMetric("fluxpulse_agent_backlog_samples_sent_total"); err != nil || v == 0 {
		t.Errorf("the restarted agent sent no backlog: %v (err %v)", v, err)
	}
}

// TestDryRun prints one collection in the text format, one series a line,
// only allow-listed families, with the instance label, and exits.
func TestDryRun(t *testing.T) {
	out, err := exec.Command(testbin.FluxPulse(t, "fluxpulse-agent"), "-dry-run", "-process", "fpnotrunning", "-external-label", "env=test").Output()
	if err != nil {
		t.Fatalf("-dry-run: %v", err)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(strings.NewReader(string(out)))
	if err != nil {
		t.Fatalf("-dry-run output is not in the text format: %v\n%s", err, out)
	}
	host, _ := os.Hostname()
	series := 0
	for name, mf := range mfs {
		if !agent.Allowed(name) {
			t.Errorf("-dry-run prints %s, which is not on the allow-list", name)
		}
		for _, m := range mf.Metric {
			series++
			ls := map[string]string{}
			for _, l := range m.Label {
				ls[l.GetName()] = l.GetValue()
			}
			if ls["instance"] != host || ls["env"] != "test" {
				t.Errorf("%s%v: want instance=%q and env=test", name, ls, host)
			}
		}
	}
	lines := 0
	for l := range strings.Lines(string(out)) {
		if !strings.HasPrefix(l, "#") {
			lines++
		}
	}
	if lines != series || series == 0 {
		t.Errorf("%d series on %d lines, want one a line", series, lines)
	}
	if got, want := len(mfs["node_cpu_seconds_total"].GetMetric()), 8*len(procStatCPUs(t)); got != want {
		t.Errorf("node_cpu_seconds_total: %d series, want 8 modes for each of %d cpus", got, len(procStatCPUs(t)))
	}
	for _, name := range []string{agent.HeartbeatMetric, agent.ProcessUpMetric, "node_memory_MemAvailable_bytes", "node_boot_time_seconds"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("-dry-run does not print %s", name)
		}
	}
}

// memStat is the memory of a process from /proc/<pid>/status.
type memStat struct {
	rss, hwm, anon, file int64 // VmRSS, VmHWM, RssAnon, RssFile
}

// procStat returns the CPU time (user+system) and the memory of process
// pid, from /proc/<pid>/stat and status.
func procStat(pid int) (cpu time.Duration, m memStat, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, m, err
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are fields 14 and 15 of the whole line, in USER_HZ (100/s).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+st) * 10 * time.Millisecond
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, m, err
	}
	for l := range strings.Lines(string(status)) {
		k, v, _ := strings.Cut(l, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.rss = kb << 10
		case "VmHWM":
			m.hwm = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return cpu, m, nil
}

// TestFootprint measures the agent's CPU and memory at the default 15s
// interval, sending to FluxPulse, with the environment of the systemd unit
// (GOMAXPROCS=1). It runs only when FLUXPULSE_AGENT_FOOTPRINT names how
// long to measure (e.g. 5m), and fails above 1% of a core or 40 MiB.
func TestFootprint(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("FLUXPULSE_AGENT_FOOTPRINT"))
	if err != nil {
		t.Skip("set FLUXPULSE_AGENT_FOOTPRINT=5m to measure the agent's footprint")
	}
	s := &stack{t: t, server: testbin.FluxPulse(t, "fluxpulse"), agentBin: testbin.FluxPulse(t, "fluxpulse-agent"),
		dataDir: t.TempDir(), walDir: t.TempDir(), addr: testbin.FreePort(t), agentAddr: testbin.FreePort(t), tenant: "footprint",
		interval: 15 * time.Second}
	s.startServer()
	cmd := exec.Command(s.agentBin, "-remote-write.url", "http://"+s.addr+"/api/v1/push", "-remote-write.tenant", s.tenant,
		"-wal.dir", s.walDir, "-web.listen-address", s.agentAddr, "-process", "fluxpulse,sshd", "-log.level", "warn")
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+cmp.Or(os.Getenv("FOOTPRINT_GOMAXPROCS"), "1"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s.waitCollections(2) // warm: WAL open, queue started, first sends done
	cpu0, _, err := procStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var maxRSS int64
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for time.Since(start) < d {
		<-tick.C
		_, m, err := procStat(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		maxRSS = max(maxRSS, m.rss)
	}
	cpu1, m, err := procStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	share := float64(cpu1-cpu0) / float64(time.Since(start))
	t.Logf("over %s at a 15s interval: CPU %s = %.3f%% of a core; RSS now %.1f MiB (anonymous %.1f, file %.1f), max sampled %.1f MiB, peak (VmHWM) %.1f MiB",
		time.Since(start).Round(time.Second), cpu1-cpu0, 100*share, mib(m.rss), mib(m.anon), mib(m.file), mib(maxRSS), mib(m.hwm))
	if share > 0.01 {
		t.Errorf("CPU: %.3f%% of a core, want under 1%%", 100*share)
	}
	if maxRSS > 40<<20 {
		t.Errorf("resident memory: %.1f MiB, want under 40 MiB", mib(maxRSS))
	}
	if v, err := s.agentMetric("prometheus_remote_storage_samples_total"); err != nil || v == 0 {
		t.Errorf("nothing was sent during the measurement: %v (err %v)", v, err)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
