package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// idleArgs close an idle tenant's TSDB 5s after its last push.
var idleArgs = []string{"-ingester.close-idle-tsdb-timeout=5s", "-ingester.ship-interval=1s", "-blocks-storage.sync-interval=1s",
	"-distributor.ingestion-rate-limit=0"}

// TestIdleTenantsCostNothing: 1,000 tenants push once and go idle; once the
// ingester closed their TSDBs the process's live heap is within 10 MiB of
// its figure with no tenants (fluxpulse-bench idle measures and checks
// it), their data is still answered (from the bucket) and a push opens a
// tenant again (#17).
func TestIdleTenantsCostNothing(t *testing.T) {
	fp := startFluxPulse(t, append([]string{"-auth.mode=header"}, idleArgs...)...)
	bench := testbin.Start(t, testbin.FluxPulse(t, "fluxpulse-bench"), nil, "idle", "-url", fp.url(), "-metrics-url", fp.internalURL(),
		"-tenants", "1000", "-series", "10", "-rounds", "1", "-senders", "4", "-wait", "4m", "-max-growth", fmt.Sprint(10<<20))
	testbin.Eventually(t, 5*time.Minute, func() error {
		if !bench.Exited() {
			return fmt.Errorf("still measuring")
		}
		return nil
	})
	out := bench.Output()
	t.Logf("fluxpulse-bench idle:\n%s", out)
	if !strings.Contains(out, "idle tenants cost no more than -max-growth") {
		t.Fatal("idle tenants cost more than 10 MiB of heap (or the tenants were not closed)")
	}
	checkIdleTenantAnswers(t, fp.url(), fp.url())
}

// TestIdleTenantsRolesApart: with roles apart every ingester closes an idle
// tenant's TSDB; the querier answers its data from the bucket and its next
// push opens it again (#17).
func TestIdleTenantsRolesApart(t *testing.T) {
	c := startCluster(t, options{ingesters: 3, distributors: 1, queriers: 1, args: idleArgs})
	status, body := post(t, c.distributors[0].url(), "bench-0007", "application/x-protobuf", pushBody(t, "idle_metric"))
	if status/100 != 2 {
		t.Fatalf("push: %d %s", status, body)
	}
	testbin.Eventually(t, 2*time.Minute, func() error {
		for _, n := range c.ingesters {
			m, err := get("http://" + n.internal + "/metrics")
			if err != nil {
				return err
			}
			if !strings.Contains(m, "\nfluxpulse_ingester_tenants 0\n") {
				return fmt.Errorf("%s has the tenant open still", n.name)
			}
		}
		return nil
	})
	q := c.queriers[0].url() + "/prometheus"
	if res := instant(t, q, `idle_metric`, time.Now(), "bench-0007"); len(res) != 1 {
		t.Fatalf("after the ingesters closed the idle tenant, its series reads %v, want 1 series (from the bucket)", res)
	}
	checkPushReopens(t, c.distributors[0].url(), c.queriers[0].url())
}

// checkIdleTenantAnswers: a closed tenant's series (of fluxpulse-bench
// idle) still answer, and a push opens it again.
func checkIdleTenantAnswers(t *testing.T, push, query string) {
	t.Helper()
	res := instant(t, query+"/prometheus", `count({__name__=~".+"})`, time.Now(), "bench-0007")
	if len(res) != 1 || valueOf(res) != "10" {
		t.Fatalf("a closed tenant's series count %v, want 10 (read from the bucket)", res)
	}
	checkPushReopens(t, push, query)
}

// checkPushReopens: a push to a closed tenant opens it again.
func checkPushReopens(t *testing.T, push, query string) {
	t.Helper()
	if status, body := post(t, push, "bench-0007", "application/x-protobuf", pushBody(t, "idle_again")); status/100 != 2 {
		t.Fatalf("push after the tenant was closed: %d %s", status, body)
	}
	if res := instant(t, query+"/prometheus", `idle_again`, time.Now(), "bench-0007"); len(res) != 1 {
		t.Fatalf("the push after closing reads %v", res)
	}
}
