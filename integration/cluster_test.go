package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// TestClusterAnswersLikePrometheus runs FluxPulse with its roles apart (3
// ingesters in zones a, b and c, RF 3, 2 distributors, 1 querier) with a
// real Prometheus remote-writing to each distributor, and checks that every
// process sees 3 ACTIVE ingesters, that the cluster answers the comparison
// queries exactly like the Prometheus that sent the data, that tenants stay
// apart, and that an ingester's gRPC port refuses calls without the cluster
// credential or without a tenant (#13).
func TestClusterAnswersLikePrometheus(t *testing.T) {
	c := startCluster(t, options{ingesters: 3, zones: []string{"a", "b", "c"}, distributors: 2, queriers: 1})
	proms := make([]*prometheusProc, len(senders))
	for k, s := range senders {
		target := startTarget(t, "fp_only_"+s.name+"_total")
		dist := c.distributors[k%len(c.distributors)].url()
		proms[k] = startPrometheus(t, func(self string) string {
			return promConfig(self, target, s.name, dist, s.tenant, s.proto)
		}, s.features)
	}
	q := c.queriers[0].url()
	start, end := waitForSenders(t, q)
	compareAll(t, q, proms, start, end)
	t.Run("grpc credential", func(t *testing.T) { checkClusterCredential(t, c) })
	if bad, err := c.nonSuccess(); err != nil || len(bad) > 0 {
		t.Errorf("distributors answered %v (%v), want only 2xx", bad, err)
	}
}

// checkClusterCredential calls an ingester's gRPC service as an outsider
// would: without the secret, and with it but naming no tenant.
func checkClusterCredential(t *testing.T, c *cluster) {
	conn, err := grpc.NewClient(c.ingesters[0].grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	call := func(ctx context.Context) error {
		return conn.Invoke(ctx, "/fluxpulse.Ingester/Labels", &emptypb.Empty{}, &emptypb.Empty{})
	}
	if err := call(metadata.AppendToOutgoingContext(t.Context(), "x-scope-orgid", senders[0].tenant)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("call without the cluster credential: %v, want Unauthenticated", err)
	}
	secret, err := os.ReadFile(filepath.Join(c.shared, "cluster-secret"))
	if err != nil {
		t.Fatal(err)
	}
	auth := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+strings.TrimSpace(string(secret)))
	if err := call(auth); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "tenant") {
		t.Errorf("call with the credential naming no tenant: %v, want InvalidArgument naming the tenant", err)
	}
	wrong := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+strings.TrimSpace(string(secret))+"x", "x-scope-orgid", senders[0].tenant)
	if err := call(wrong); status.Code(err) != codes.Unauthenticated {
		t.Errorf("call with a wrong secret: %v, want Unauthenticated", err)
	}
}

// TestClusterSurvivesIngesterLoss pushes a bounded load through both
// distributors and has a real Prometheus write throughout, kills one of
// three ingesters with SIGKILL, and checks that no push failed, that every
// acknowledged sample is read back exactly once, and that the ingester
// rejoins on its data directory with its tokens. Then, with two of three
// killed, pushes get a 503 naming the quorum and queries fail naming the
// ingesters (#13).
func TestClusterSurvivesIngesterLoss(t *testing.T) {
	c := startCluster(t, options{ingesters: 3, distributors: 2, queriers: 1})
	target := startTarget(t, "fp_only_loss_total")
	prom := startPrometheus(t, func(self string) string {
		return promConfig(self, target, "loss", c.distributors[0].url(), "tenant-prom", "prometheus.WriteRequest")
	}, "")
	// About 20 seconds of load: 2,580 series × 40 rounds at 5,000 samples/s.
	load := c.startBench("-series", "2580", "-rounds", "40", "-rate", "5000", "-senders", "4", "-batch", "500")
	victim := c.ingesters[1]
	tokens := filepath.Join(victim.dir, "ingester-ring-tokens")
	before, err := os.ReadFile(tokens)
	if err != nil {
		t.Fatalf("tokens not persisted in the data directory: %v", err)
	}
	testbin.Eventually(t, time.Minute, func() error { // kill it while the load runs
		if time.Since(load.started()) < 5*time.Second {
			return fmt.Errorf("letting the load run")
		}
		return nil
	})
	victim.kill9()
	out := load.wait(t, 5*time.Minute)
	t.Logf("load during the loss of %s:\n%s", victim.name, out)
	if bad, err := c.nonSuccess(); err != nil || len(bad) > 0 {
		t.Fatalf("distributors answered %v (%v) while one ingester was down, want only 2xx", bad, err)
	}
	if failed := promFailures(t, prom); failed > 0 {
		t.Fatalf("Prometheus failed to send %v samples", failed)
	}

	c.restart(victim)
	c.waitMembers("ACTIVE", 3)
	after, err := os.ReadFile(tokens)
	if err != nil || string(after) != string(before) {
		t.Fatalf("the ingester came back with other tokens (%v)", err)
	}

	c.ingesters[0].kill9()
	c.ingesters[2].kill9()
	status, body := post(t, c.distributors[0].url(), "tenant-x", "application/x-protobuf", pushBody(t, "after_loss"))
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "quorum") {
		t.Fatalf("push with two of three ingesters down: %d %s, want 503 naming the quorum", status, body)
	}
	code, qb := api(t, c.queriers[0].url()+"/prometheus", "/api/v1/query", url.Values{"query": {"up"}}, "tenant-prom")
	if code < 500 || !strings.Contains(string(qb), "did not answer") || !strings.Contains(string(qb), c.ingesters[0].name) {
		t.Fatalf("query with two of three ingesters down: %d %s, want a 5xx naming the missing ingesters", code, qb)
	}
}

// promFailures returns the samples a Prometheus failed to send for good.
func promFailures(t *testing.T, p *prometheusProc) float64 {
	t.Helper()
	res := instant(t, p.url, `sum(prometheus_remote_storage_samples_failed_total)`, time.Now(), "")
	if len(res) == 0 {
		return 0
	}
	var v float64
	fmt.Sscan(valueOf(res).(string), &v)
	return v
}

// TestClusterRollingRestart restarts the three ingesters one after the
// other (SIGTERM, start, wait until ACTIVE) under load: no push fails and
// nothing is lost (#13).
func TestClusterRollingRestart(t *testing.T) {
	c := startCluster(t, options{ingesters: 3, distributors: 2, queriers: 1})
	load := c.startBench("-series", "2580", "-rounds", "120", "-rate", "6000", "-senders", "4", "-batch", "500")
	for _, n := range c.ingesters {
		c.stop(n)
		c.restart(n)
		c.waitMembers("ACTIVE", 3)
	}
	if load.proc.Exited() {
		t.Fatal("the load ended before the restarts did: make it longer")
	}
	t.Logf("load during the rolling restart:\n%s", load.wait(t, 5*time.Minute))
	if bad, err := c.nonSuccess(); err != nil || len(bad) > 0 {
		t.Fatalf("distributors answered %v (%v) during the rolling restart, want only 2xx", bad, err)
	}
}

// TestClusterZoneLoss runs 6 ingesters in 3 zones with zone awareness and
// kills both ingesters of one zone under load: no push fails (#13).
func TestClusterZoneLoss(t *testing.T) {
	c := startCluster(t, options{ingesters: 6, zones: []string{"a", "b", "c"}, distributors: 2, queriers: 1})
	load := c.startBench("-series", "2580", "-rounds", "40", "-rate", "5000", "-senders", "4", "-batch", "500")
	testbin.Eventually(t, time.Minute, func() error {
		if time.Since(load.started()) < 5*time.Second {
			return fmt.Errorf("letting the load run")
		}
		return nil
	})
	for k, n := range c.ingesters {
		if k%3 == 0 { // zone a
			n.kill9()
		}
	}
	t.Logf("load during the loss of zone a:\n%s", load.wait(t, 5*time.Minute))
	if bad, err := c.nonSuccess(); err != nil || len(bad) > 0 {
		t.Fatalf("distributors answered %v (%v) with zone a down, want only 2xx", bad, err)
	}
}

// TestClusterRulerAndCompactor runs the ruler and the compactor as
// processes of their own: the ruler reads through its querier over the
// ring and writes a recording rule's results through its distributor, and
// the cluster's querier reads them back (#13).
func TestClusterRulerAndCompactor(t *testing.T) {
	c := startCluster(t, options{ingesters: 3, distributors: 1, queriers: 1, rulers: 1, compactors: 1,
		args: []string{"-ruler.min-evaluation-interval=1s"}})
	stop := make(chan struct{})
	var pushing sync.WaitGroup
	defer func() { close(stop); pushing.Wait() }()
	pushing.Go(func() { // up{instance=…} = 1 for three targets, every half second
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			for _, inst := range []string{"a", "b", "c"} {
				post(t, c.distributors[0].url(), "team-a", "application/x-protobuf", upBody(t, inst))
			}
		}
	})
	postRules(t, c.rulers[0].url(), "team-a", "cluster", `name: totals
interval: 1s
rules:
  - record: cluster:up:sum
    expr: sum(up)
`)
	testbin.Eventually(t, time.Minute, func() error {
		res := instant(t, c.queriers[0].url()+"/prometheus", `cluster:up:sum`, time.Now(), "team-a")
		if len(res) != 1 || valueOf(res) != "3" {
			return fmt.Errorf("cluster:up:sum = %v, want 3", res)
		}
		return nil
	})
	// The recorded series is the tenant's alone.
	if res := instant(t, c.queriers[0].url()+"/prometheus", `cluster:up:sum`, time.Now(), "team-b"); len(res) != 0 {
		t.Fatalf("team-b sees team-a's recording: %v", res)
	}
	if _, err := get(c.compactors[0].url() + "/ready"); err != nil {
		t.Fatalf("compactor: %v", err)
	}
	if m, err := get("http://" + c.compactors[0].internal + "/metrics"); err != nil || !strings.Contains(m, "fluxpulse_compactor_") {
		t.Fatalf("compactor metrics: %v", err)
	}
}

// upBody is a remote-write 1.0 body with up{instance=…} = 1 now.
func upBody(t *testing.T, instance string) []byte {
	t.Helper()
	b, err := proto.Marshal(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: instance}, {Name: "job", Value: "node"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// TestClusterHAPair has two real Prometheus servers of one HA pair (same
// cluster label, replicas r1 and r2) push through two distributors: only
// one replica's samples are stored, without the replica label; killing the
// elected one, the other takes over within the failover timeout, and the
// gap in the data is no longer than the timeout plus a scrape interval
// (and the time to send a batch) (#17).
func TestClusterHAPair(t *testing.T) {
	const failover = 5 * time.Second
	c := startCluster(t, options{ingesters: 3, distributors: 2, queriers: 1, args: []string{
		"-distributor.ha-tracker.enable", "-distributor.ha-tracker.failover-timeout=" + failover.String(),
		"-distributor.ha-tracker.update-timeout=1s", "-distributor.ha-tracker.accept-ha-samples"}})
	target := startTarget(t, "fp_only_ha_total")
	proms := map[string]*prometheusProc{}
	for k, replica := range []string{"r1", "r2"} {
		dist := c.distributors[k].url()
		proms[replica] = startPrometheus(t, func(self string) string {
			return haPromConfig(self, target, dist, replica)
		}, "")
	}
	q := c.queriers[0].url() + "/prometheus"
	testbin.Eventually(t, time.Minute, func() error { // 20s of data
		if n := countOverTime(t, q, 20*time.Second); n < 18 {
			return fmt.Errorf("%v samples of the last 20s", n)
		}
		return nil
	})
	if n := countOverTime(t, q, 20*time.Second); n > 22 {
		t.Fatalf("%v samples of up in 20s at a 1s scrape interval: both replicas were stored", n)
	}
	if vals := apiData(t, q, "/api/v1/label/__replica__/values", nil, "tenant-ha").([]any); len(vals) != 0 {
		t.Fatalf("the replica label was stored: %v", vals)
	}
	elected := "r1"
	if haDropped(t, c.distributors[0]) > 0 { // r1's distributor dropped its samples
		elected = "r2"
	}
	killed := time.Now()
	proms[elected].proc.Kill()
	testbin.Eventually(t, time.Minute, func() error { // the other replica's samples arrive again
		if time.Since(killed) < failover+5*time.Second {
			return fmt.Errorf("waiting for the failover")
		}
		return nil
	})
	gap := maxGap(t, q, time.Since(killed)+30*time.Second)
	if limit := failover + time.Second + time.Second; gap > limit {
		t.Fatalf("the data has a gap of %s after the elected replica died, want at most %s (failover timeout, a scrape interval, a send)", gap, limit)
	}
	t.Logf("gap after killing %s: %s (failover timeout %s)", elected, gap, failover)
}

func haPromConfig(self, target, dist, replica string) string {
	return fmt.Sprintf(`
global:
  scrape_interval: 1s
  external_labels: {cluster: eu-1, __replica__: %[4]s}
scrape_configs:
  - job_name: target
    static_configs: [{targets: ["%[2]s"]}]
remote_write:
  - url: %[3]s/api/v1/push
    headers: {X-Scope-OrgID: tenant-ha}
    queue_config: {batch_send_deadline: 200ms, min_backoff: 100ms, max_backoff: 1s}
`, self, target, dist, replica)
}

// countOverTime is how many samples of up the tenant has in the last d.
func countOverTime(t *testing.T, q string, d time.Duration) float64 {
	res := instant(t, q, fmt.Sprintf(`sum(count_over_time(up{job="target"}[%ds]))`, int(d.Seconds())), time.Now(), "tenant-ha")
	if len(res) == 0 {
		return 0
	}
	var n float64
	fmt.Sscan(valueOf(res).(string), &n)
	return n
}

// maxGap is the longest time between two samples of up in the last d.
func maxGap(t *testing.T, q string, d time.Duration) time.Duration {
	res := apiData(t, q, "/api/v1/query", url.Values{"query": {fmt.Sprintf(`up{job="target"}[%ds]`, int(d.Seconds()))}}, "tenant-ha")
	series := res.(map[string]any)["result"].([]any)
	if len(series) != 1 {
		t.Fatalf("%d series of up, want 1", len(series))
	}
	var gap time.Duration
	var prev float64
	for k, v := range series[0].(map[string]any)["values"].([]any) {
		at := v.([]any)[0].(float64)
		if k > 0 {
			gap = max(gap, time.Duration((at-prev)*float64(time.Second)))
		}
		prev = at
	}
	return gap
}

// haDropped is how many samples a distributor dropped as from a replica
// that is not the elected one.
func haDropped(t *testing.T, d *node) float64 {
	body, err := get("http://" + d.internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, `fluxpulse_distributor_ha_dropped_samples_total{tenant="tenant-ha"}`) {
			fmt.Sscan(strings.Fields(line)[1], &n)
		}
	}
	return n
}

// TestClusterShuffleSharding runs 6 ingesters and two tenants of the load
// tool, bench-0000 with ingestion_tenant_shard_size 3 and bench-0001
// without: bench-0000's series are on exactly 3 ingesters, bench-0001's on
// all of them (per-ingester fluxpulse_ingester_active_series). While the
// load runs, an ingester joins and one of bench-0000's shard is killed with
// SIGKILL; no push fails and every sample of both tenants reads back
// exactly once (#17).
func TestClusterShuffleSharding(t *testing.T) {
	rt := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(rt, []byte("tenants:\n  bench-0000:\n    limits: {ingestion_tenant_shard_size: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, options{ingesters: 6, distributors: 2, queriers: 1, args: []string{"-runtime-config.file=" + rt}})
	// About 40 seconds: 2 × 1,290 series × 60 rounds at 4,000 samples/s.
	load := c.startBench("-tenants", "2", "-series", "1290", "-rounds", "60", "-rate", "4000", "-senders", "4", "-batch", "500")
	var shard []*node
	testbin.Eventually(t, time.Minute, func() error {
		held := c.holding("bench-0000")
		wide := c.holding("bench-0001")
		if len(held) != 3 || len(wide) != 6 {
			return fmt.Errorf("bench-0000 is on %d ingesters, want 3; bench-0001 on %d, want 6", len(held), len(wide))
		}
		shard = held
		return nil
	})
	joined := c.addIngester()
	c.waitMembers("ACTIVE", 7)
	shard[0].kill9()
	t.Logf("load while %s joined and %s was killed:\n%s", joined.name, shard[0].name, load.wait(t, 5*time.Minute))
	if bad, err := c.nonSuccess(); err != nil || len(bad) > 0 {
		t.Fatalf("distributors answered %v (%v), want only 2xx", bad, err)
	}
	if held := c.holding("bench-0000"); len(held) > 4 {
		t.Fatalf("bench-0000 is on %d ingesters after one joined, want at most 4 (its shard before and after)", len(held))
	}
}

// holding returns the running ingesters with active series of tenant.
func (c *cluster) holding(tenant string) []*node {
	var out []*node
	for _, n := range c.ingesters {
		if n.proc.Exited() {
			continue
		}
		body, err := get("http://" + n.internal + "/metrics")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, `fluxpulse_ingester_active_series{tenant="`+tenant+`"} `) && !strings.HasSuffix(line, " 0") {
				out = append(out, n)
			}
		}
	}
	return out
}
