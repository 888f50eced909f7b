package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// TestQueryQueueLimits (#15): with one querier worker and one waiting
// sub-query allowed per tenant, the query frontend refuses a query split
// into more pieces with 429 naming the flag, in -target=all and in
// -target=query-frontend; a one-piece query still runs; the queue's metrics
// say so.
func TestQueryQueueLimits(t *testing.T) {
	args := []string{"-query-frontend.querier-workers=1", "-query-frontend.max-outstanding-requests-per-tenant=1"}
	t.Run("all", func(t *testing.T) {
		fp := startFluxPulse(t, append([]string{"-auth.mode=header"}, args...)...)
		checkQueueLimits(t, fp.url(), fp.internalURL()+"/metrics")
	})
	t.Run("apart", func(t *testing.T) {
		c := startCluster(t, options{ingesters: 1, distributors: 1, queriers: 1, frontends: 1, args: append(args, "-ingester.ring.replication-factor=1")})
		checkQueueLimits(t, c.frontends[0].url(), "http://"+c.frontends[0].internal+"/metrics")
	})
}

func checkQueueLimits(t *testing.T, base, metrics string) {
	t.Helper()
	end := time.Now().Truncate(time.Minute)
	long := url.Values{"query": {`sum(rate(node_cpu_seconds_total[5m]))`}, "step": {"600"},
		"start": {ts(end.Add(-8 * 24 * time.Hour))}, "end": {ts(end)}}
	testbin.Eventually(t, time.Minute, func() error {
		var wg sync.WaitGroup
		refused := make(chan string, 4)
		for range 4 {
			wg.Go(func() {
				code, body, err := rangeQuery(base, "queued", long)
				if err == nil && code == http.StatusTooManyRequests {
					refused <- body
				}
			})
		}
		wg.Wait()
		close(refused)
		for body := range refused {
			if !strings.Contains(body, "-query-frontend.max-outstanding-requests-per-tenant") || !strings.Contains(body, "tenant queued") {
				t.Fatalf("429 without the flag and the tenant: %s", body)
			}
			return nil
		}
		return fmt.Errorf("no 8-day query (9 pieces) refused yet")
	})
	short := url.Values{"query": {`sum(rate(node_cpu_seconds_total[5m]))`}, "step": {"60"},
		"start": {ts(end.Add(-time.Hour))}, "end": {ts(end)}}
	if code, body, err := rangeQuery(base, "queued", short); err != nil || code != http.StatusOK {
		t.Fatalf("one-piece query: %d %s %v", code, body, err)
	}
	if n := metricSum(t, metrics, "fluxpulse_query_frontend_discarded_requests_total", map[string]string{"tenant": "queued"}); n < 1 {
		t.Fatalf("discarded_requests_total{tenant=queued} = %v", n)
	}
	if n := metricSum(t, metrics, "fluxpulse_query_frontend_queue_duration_seconds_count", nil); n < 1 {
		t.Fatalf("queue_duration_seconds_count = %v", n)
	}
	if n := metricSum(t, metrics, "fluxpulse_query_frontend_querier_workers", nil); n != 1 {
		t.Fatalf("querier_workers = %v, want 1", n)
	}
}
