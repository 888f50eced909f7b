package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// gatewayArgs ship one-minute blocks at once and keep queries over the
// history (older than 4 minutes) off the ingesters: in the cluster they
// are answered by the store-gateways alone.
var gatewayArgs = []string{"-distributor.ingestion-rate-limit=0", "-ingester.block-range=1m", "-ingester.ship-interval=300ms",
	"-ingester.retention-period=1m", "-blocks-storage.sync-interval=1s", "-querier.query-ingesters-within=4m"}

// dashboardStep is the step of the dashboard's range queries.
const dashboardStep = 30 * time.Second

// dashboard is a Grafana-like board over the pushed history: range
// queries, a series lookup and label values, each with the query string
// of its API call. start is a multiple of dashboardStep, as Grafana sends
// it: the single binary's query frontend aligns a range query to its step
// and a querier asked directly does not, so an unaligned start would be
// answered at other times.
func dashboard(start, end time.Time) []struct{ path, query string } {
	rng := func(q string) struct{ path, query string } {
		return struct{ path, query string }{"/api/v1/query_range", url.Values{"query": {q}, "start": {ts(start)}, "end": {ts(end)}, "step": {strconv.Itoa(int(dashboardStep.Seconds()))}}.Encode()}
	}
	return []struct{ path, query string }{
		rng(`sum(rate(fp_hist[1m]))`),
		rng(`max by (fp_secret_label) (fp_hist)`),
		rng(`count(fp_hist)`),
		rng(`avg_over_time(fp_hist[2m])`),
		rng(`topk(3, fp_hist)`),
		{"/api/v1/series", url.Values{"match[]": {`fp_hist{fp_secret_label=~"fp_secret_value_0[0-2].*"}`}, "start": {ts(start)}, "end": {ts(end)}}.Encode()},
		{"/api/v1/label/fp_secret_label/values", url.Values{"start": {ts(start)}, "end": {ts(end)}}.Encode()},
	}
}

// apiGet is api without the test: for goroutines of a load.
func apiGet(base, path, query, tenant string) (any, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/prometheus"+path+"?"+query, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s?%s: %d %.400s (%v)", path, query, resp.StatusCode, b, err)
	}
	var r struct {
		Data any `json:"data"`
	}
	return r.Data, json.Unmarshal(b, &r)
}

// TestClusterStoreGatewayLoss runs three store-gateways with RF 3 over
// history shipped in one-minute blocks by three ingesters, and a
// single-binary FluxPulse given the same samples. Four clients load the
// cluster's querier with a dashboard over the history while one
// store-gateway is killed with SIGKILL: no query fails and every answer
// equals the single binary's; the querier retried blocks on other
// store-gateways. A deletion request hides history read through the
// store-gateways at once, and another tenant sees nothing (#17).
func TestClusterStoreGatewayLoss(t *testing.T) {
	single := startFluxPulse(t, append([]string{"-auth.mode=header"}, gatewayArgs...)...)
	c := startCluster(t, options{ingesters: 3, storeGateways: 3, distributors: 1, queriers: 1, args: gatewayArgs})
	start := time.Now().Add(-25 * time.Minute).Truncate(dashboardStep)
	end := start.Add(20*time.Minute - 15*time.Second)
	for _, base := range []string{single.url(), c.distributors[0].url()} {
		pushHistoryAt(t, base, "dash", "fp_hist", 50, 20, start)
		// A sample now moves the heads on, so that all of the history
		// is cut into blocks and shipped.
		if status, body := post(t, base, "dash", "application/x-protobuf", pushBody(t, "fp_now")); status/100 != 2 {
			t.Fatalf("push: %d %s", status, body)
		}
	}
	board := dashboard(start, end)
	want := make([]any, len(board))
	for k, p := range board {
		var err error
		if want[k], err = apiGet(single.url(), p.path, p.query, "dash"); err != nil {
			t.Fatal(err)
		}
	}
	q := c.queriers[0].url()
	testbin.Eventually(t, 3*time.Minute, func() error { // shipped, synced, answered by the store-gateways
		for k, p := range board {
			got, err := apiGet(q, p.path, p.query, "dash")
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, want[k]) {
				return fmt.Errorf("%s?%s answers other data than the single binary so far: %s", p.path, p.query, jsonDiff(got, want[k]))
			}
		}
		return nil
	})
	queries, afterKill := runDashboardLoad(t, q, board, want, func() { c.gateways[1].kill9() })
	t.Logf("%d dashboard calls, %d of them after the kill, all equal to the single binary's", queries, afterKill)
	if afterKill < 50 {
		t.Fatalf("only %d calls after the kill", afterKill)
	}
	if n := metricValue(t, "http://"+c.queriers[0].internal+"/metrics", "fluxpulse_querier_store_gateway_retries_total"); n == 0 {
		t.Fatal("the querier never asked another store-gateway for a block: the killed one was never asked?")
	}
	if res := instant(t, q+"/prometheus", `count(fp_hist)`, end, "other"); len(res) != 0 {
		t.Fatalf("another tenant sees %v", res)
	}
	deleteSeries(t, q, "dash", url.Values{"match[]": {`fp_hist{fp_secret_label="fp_secret_value_007"}`}})
	if res := instant(t, q+"/prometheus", `count(fp_hist)`, end, "dash"); len(res) != 1 || valueOf(res) != "49" {
		t.Fatalf("after deleting one of 50 series, count(fp_hist) = %v, want 49", res)
	}
}

// jsonDiff shows where two decoded JSON answers first differ, with some
// of the text around it on both sides.
func jsonDiff(got, want any) string {
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	k := 0
	for k < len(g) && k < len(w) && g[k] == w[k] {
		k++
	}
	from := max(0, k-120)
	return fmt.Sprintf("at byte %d, got ...%s... want ...%s...", k, g[from:min(len(g), k+120)], w[from:min(len(w), k+120)])
}

// runDashboardLoad runs the board from four clients for 30 seconds, calling
// kill after 8 (and 20 calls), and fails the test on any failed call or answer that is
// not want's. It returns the calls made, and those made after the kill.
func runDashboardLoad(t *testing.T, q string, board []struct{ path, query string }, want []any, kill func()) (int64, int64) {
	t.Helper()
	var (
		calls, after atomic.Int64
		killed       atomic.Bool
		mu           sync.Mutex
		failures     []string
		wg           sync.WaitGroup
	)
	deadline := time.Now().Add(30 * time.Second)
	for w := range 4 {
		wg.Go(func() {
			for k := w; time.Now().Before(deadline); k++ {
				p := board[k%len(board)]
				wasKilled := killed.Load()
				got, err := apiGet(q, p.path, p.query, "dash")
				if err == nil && !reflect.DeepEqual(got, want[k%len(board)]) {
					err = fmt.Errorf("%s?%s answered other data than the single binary: %s", p.path, p.query, jsonDiff(got, want[k%len(board)]))
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
				calls.Add(1)
				if wasKilled {
					after.Add(1)
				}
			}
		})
	}
	began := time.Now()
	testbin.Eventually(t, time.Minute, func() error {
		if time.Since(began) < 8*time.Second || calls.Load() < 20 {
			return fmt.Errorf("letting the load run: %d calls", calls.Load())
		}
		return nil
	})
	kill()
	killed.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d dashboard calls failed, the first: %s", len(failures), calls.Load(), failures[0])
	}
	return calls.Load(), after.Load()
}

// metricValue is the sum of a metric's samples on a /metrics page.
func metricValue(t *testing.T, metricsURL, name string) float64 {
	t.Helper()
	body, err := get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+`(?:\{[^}]*\})? (\S+)$`).FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return sum
}
