package agent

import (
	"bytes"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// testConfig is a valid configuration with the flags' defaults.
func testConfig(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(append([]string{"-remote-write.url=http://127.0.0.1:1/api/v1/push", "-remote-write.tenant=t", "-wal.dir=" + t.TempDir()}, args...)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // empty: valid
	}{
		{name: "defaults", args: nil},
		{name: "token file and tenant", args: []string{"-remote-write.token-file=" + token}},
		{name: "token file only", args: []string{"-remote-write.token-file=" + token, "-remote-write.tenant="}},
		{name: "remote write 2.0", args: []string{"-remote-write.protocol=2.0"}},
		{name: "no url", args: []string{"-remote-write.url="}, wantErr: "-remote-write.url is required"},
		{name: "not http", args: []string{"-remote-write.url=ftp://x/"}, wantErr: "want an http or https URL"},
		{name: "no credentials", args: []string{"-remote-write.tenant="}, wantErr: "-remote-write.token-file or -remote-write.tenant"},
		{name: "missing token file", args: []string{"-remote-write.token-file=/nonexistent"}, wantErr: "-remote-write.token-file"},
		{name: "protocol", args: []string{"-remote-write.protocol=3"}, wantErr: "must be 1.0 or 2.0"},
		{name: "interval", args: []string{"-scrape.interval=100ms"}, wantErr: "-scrape.interval must be at least 1s"},
		{name: "retention", args: []string{"-wal.retention=10s"}, wantErr: "-wal.retention must be at least 1m"},
		{name: "process name", args: []string{"-process=nginx,/usr/bin/x"}, wantErr: `-process: "/usr/bin/x" is not a process name`},
		{name: "label name", args: []string{"-external-label=1x=y"}, wantErr: `"1x" is not a valid label name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := testConfig(t, tc.args...).Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

func TestListFlags(t *testing.T) {
	c := testConfig(t, "-process=nginx, postgres", "-process=nginx,redis-server",
		"-external-label=env=prod", "-external-label=team=a=b", "-external-label=env=staging")
	if got, want := []string(c.Processes), []string{"nginx", "postgres", "redis-server"}; !slices.Equal(got, want) {
		t.Errorf("-process: got %q, want %q", got, want)
	}
	if got, want := c.ExternalLabels.String(), "team=a=b,env=staging"; got != want {
		t.Errorf("-external-label: got %q, want %q", got, want)
	}
	var ls Labels
	if err := ls.Set("novalue"); err == nil {
		t.Error("-external-label=novalue: want an error")
	}
}

// startProbe runs a copy of sleep under the name name, with a secret in its
// command line and environment, until the test ends.
func startProbe(t *testing.T, name, secret string) {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary:", err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "600")
	cmd.Args[0] = "--password=" + secret // argv[0] is part of /proc/<pid>/cmdline
	cmd.Env = []string{"API_KEY=" + secret}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// seriesValue returns the value of the series of family name with label
// process=proc.
func seriesValue(mfs []*dto.MetricFamily, name, proc string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "process" && l.GetValue() == proc {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// leaky is a collector that exports what the agent must never send.
type leaky struct{ desc *prometheus.Desc }

func (l leaky) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }
func (l leaky) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, 1, "/usr/bin/app --password=leak")
}

// TestPrivacy collects on this machine and checks that only allow-listed
// families leave it, that no label carries a command line, that named
// processes are found by name with nothing of their command line or
// environment, and that a family off the list is dropped and counted.
func TestPrivacy(t *testing.T) {
	const secret = "S3CRET-must-not-leave"
	startProbe(t, "fpprivacyprobe", secret)
	startProbe(t, "fpprivacyprobe", secret)
	reg := prometheus.NewRegistry()
	a, err := New(testConfig(t, "-process=fpprivacyprobe,fpnotrunning"), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	a.coll.reg.MustRegister(leaky{prometheus.NewDesc("node_textfile_cmdline", "leak", []string{"cmdline"}, nil)})
	mfs, err := a.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteText(&out, mfs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), "leak") {
		t.Errorf("a command line or environment leaked into what is sent:\n%s", out.String())
	}
	if got := testutil.ToFloat64(a.m.dropped.WithLabelValues("node_textfile_cmdline")); got != 1 {
		t.Errorf("dropped series of node_textfile_cmdline: got %v, want 1", got)
	}

	for _, tc := range []struct {
		family, process string
		want            float64
	}{
		{ProcessUpMetric, "fpprivacyprobe", 1}, {ProcessesMetric, "fpprivacyprobe", 2},
		{ProcessUpMetric, "fpnotrunning", 0}, {ProcessesMetric, "fpnotrunning", 0},
	} {
		if got, ok := seriesValue(mfs, tc.family, tc.process); !ok || got != tc.want {
			t.Errorf("%s{process=%q}: got %v (present: %v), want %v", tc.family, tc.process, got, ok, tc.want)
		}
	}

	// Every label the agent sends, and what its values may look like.
	labelNames := []string{"collector", "cpu", "device", "device_error", "fstype", "instance", "mode", "mountpoint", "name", "process", "state", "type"}
	for _, mf := range mfs {
		if !Allowed(mf.GetName()) {
			t.Errorf("family %s is not on the allow-list", mf.GetName())
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if !slices.Contains(labelNames, l.GetName()) {
					t.Errorf("%s has label %s=%q, which is not known to be safe", mf.GetName(), l.GetName(), l.GetValue())
				}
				if strings.ContainsAny(l.GetValue(), " \t\n=") {
					t.Errorf("%s{%s=%q}: looks like a command line", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestAllowListExcludesProcessData guards the allow-list and the collector
// list themselves against families and collectors that carry command
// lines, file contents, identities or addresses.
func TestAllowListExcludesProcessData(t *testing.T) {
	for _, f := range AllowList() {
		for _, bad := range []string{"cmdline", "command", "args", "environ", "textfile", "user", "session", "address"} {
			if strings.Contains(strings.ToLower(f), bad) {
				t.Errorf("allow-list family %s looks like it carries %s", f, bad)
			}
		}
		// _info families carry strings (models, serials, versions, MAC and
		// IP addresses, mount options) rather than measurements.
		if strings.HasSuffix(f, "_info") {
			t.Errorf("allow-list family %s is an info metric", f)
		}
	}
	for _, c := range []string{"textfile", "logind", "supervisord", "runit", "interrupts", "ethtool", "wifi", "dmi", "uname", "os", "network_route", "cgroups", "perf", "drm"} {
		if slices.Contains(collectors, c) {
			t.Errorf("collector %s is enabled", c)
		}
	}
}

func TestThrottle(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(newThrottle(slog.NewTextHandler(&buf, nil), time.Hour))
	for range 3 {
		l.Warn("collector failed", "err", "x")
		l.With("collector", "a").Warn("collector failed")
		l.With("collector", "b").Warn("collector failed")
		l.Info("other")
	}
	if got := strings.Count(buf.String(), "\n"); got != 4 {
		t.Errorf("got %d lines, want each of the 4 distinct messages once:\n%s", got, buf.String())
	}
}

func TestWatcherStarted(t *testing.T) {
	var buf bytes.Buffer
	h := newWatcherStarted(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	l := slog.New(h).With("queue", "q")
	l.Info("Starting WAL watcher")
	select {
	case <-h.ch:
		t.Fatal("signalled before the watcher replayed")
	default:
	}
	l.Info(watcherStartMessage)
	select {
	case <-h.ch:
	default:
		t.Fatal("not signalled")
	}
	if buf.Len() != 0 {
		t.Errorf("info records passed a handler at level error: %s", buf.String())
	}
}

// TestDocsListTheAllowList keeps the allow-list in docs/agent.md equal to
// the one the agent enforces.
func TestDocsListTheAllowList(t *testing.T) {
	b, err := os.ReadFile("../docs/agent.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(b), "<!-- allow-list start")
	list, _, ok2 := strings.Cut(rest, "<!-- allow-list end -->")
	if !ok1 || !ok2 {
		t.Fatal("docs/agent.md has no allow-list markers")
	}
	_, list, _ = strings.Cut(list, "-->")
	var got []string
	for _, f := range strings.Split(list, "`") {
		if f = strings.TrimSpace(f); f != "" && f != "," {
			got = append(got, f)
		}
	}
	slices.Sort(got)
	if want := AllowList(); !slices.Equal(got, want) {
		t.Errorf("docs/agent.md lists\n%q\nthe agent allows\n%q", got, want)
	}
}
