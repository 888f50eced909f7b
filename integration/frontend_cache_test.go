package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// startMemcached starts a real memcached (Debian's) on a free loopback port
// and returns its address.
func startMemcached(t *testing.T) string {
	t.Helper()
	addr := testbin.FreePort(t)
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-l", host, "-p", port, "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root without it
	}
	testbin.Start(t, "/usr/bin/memcached", nil, args...)
	testbin.Eventually(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return addr
}

// memcachedDump returns every key and value memcached holds, read raw with
// its text protocol.
func memcachedDump(t *testing.T, addr string) map[string][]byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprint(c, "lru_crawler metadump all\r\n")
	var keys []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line = strings.TrimSpace(line); line == "END" {
			break
		}
		for _, f := range strings.Fields(line) {
			if k, ok := strings.CutPrefix(f, "key="); ok {
				k, _ = url.QueryUnescape(k)
				keys = append(keys, k)
			}
		}
	}
	out := map[string][]byte{}
	for _, k := range keys {
		fmt.Fprintf(c, "get %s\r\n", k)
		head, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		var name string
		var flags, size int
		if _, err := fmt.Sscanf(head, "VALUE %s %d %d", &name, &flags, &size); err != nil {
			continue // gone meanwhile: END
		}
		v := make([]byte, size+2)
		if _, err := io.ReadFull(r, v); err != nil {
			t.Fatal(err)
		}
		out[k] = v[:size]
		if end, _ := r.ReadString('\n'); strings.TrimSpace(end) != "END" {
			t.Fatalf("memcached answered %q after a value", end)
		}
	}
	return out
}

// TestQueryFrontendCacheMemcached is #15's results cache with a real
// memcached: a dashboard refresh a minute later asks the querier only for
// the new part (the metrics say so) and answers like the first; the values
// memcached holds name no label name or value of the tenant; a deletion
// request makes the next answer miss the cache and hide the deleted data.
func TestQueryFrontendCacheMemcached(t *testing.T) {
	mc := startMemcached(t)
	fp := startFluxPulse(t, "-auth.mode=header", "-distributor.ingestion-rate-limit=0",
		"-query-frontend.results-cache.backend=memcached", "-query-frontend.results-cache.memcached.addresses="+mc,
		"-query-frontend.max-cache-freshness=1m")
	end := time.Now().Truncate(time.Minute)
	origin := end.Add(-3 * 24 * time.Hour)
	pushAll(t, fp.url()+"/api/v1/push", "cached", longRangeData(t, origin, end, 0))
	metrics := fp.internalURL() + "/metrics"
	downstream := func() float64 {
		return metricSum(t, metrics, "fluxpulse_query_frontend_downstream_range_seconds_total", nil)
	}
	const q = `sum by (instance) (rate(node_cpu_seconds_total[5m])) + on (instance) group_left sum by (instance) (node_memory_MemAvailable_bytes)`
	ask := func(at time.Time) any {
		e := at.Unix() / 60 * 60
		_, v := rangeAnswer(t, fp.url()+"/prometheus", url.Values{"query": {q}, "start": {fmt.Sprint(e - 3*86400)}, "end": {fmt.Sprint(e)}, "step": {"60"}}, "cached")
		return v
	}

	// A tenant's answers are cached once it has a data key, which its first
	// block shipped to the bucket creates: ask until the answer was stored.
	var first any
	testbin.Eventually(t, time.Minute, func() error {
		before := downstream()
		first = ask(end)
		if got := downstream() - before; got < 3*86400 {
			t.Fatalf("the first query asked the querier for %vs, want the whole 3 days", got)
		}
		if w := metricSum(t, metrics, "fluxpulse_query_frontend_results_cache_written_bytes_total", nil); w == 0 {
			return fmt.Errorf("nothing cached yet (the tenant has no data key before its first block ships)")
		}
		return nil
	})
	// A minute of new data, and the refresh a minute later.
	pushAll(t, fp.url()+"/api/v1/push", "cached", longRangeData(t, origin, end.Add(time.Minute), 3*24*60))
	before, hits := downstream(), metricSum(t, metrics, "fluxpulse_query_frontend_results_cache_hits_total", nil)
	refreshed := ask(end.Add(time.Minute))
	got := downstream() - before
	t.Logf("refresh: the querier evaluated %vs of the 3 days", got)
	if got > (5 * time.Minute).Seconds() {
		t.Fatalf("the refresh asked the querier for %vs, want only the new part", got)
	}
	if h := metricSum(t, metrics, "fluxpulse_query_frontend_results_cache_hits_total", nil) - hits; h < 3 {
		t.Fatalf("%v cache hits on the refresh, want one for each day", h)
	}
	if key(first) == key(refreshed) {
		t.Fatal("the refresh shows no new minute")
	}

	dump := memcachedDump(t, mc)
	if len(dump) == 0 {
		t.Fatal("memcached holds nothing")
	}
	for k, v := range dump {
		for _, secret := range []string{"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "instance", "mode", "idle", "node", "cached", "metric", "values"} {
			if strings.Contains(k, secret) || bytes.Contains(v, []byte(secret)) {
				t.Errorf("memcached entry %s holds %q in clear", k, secret)
			}
		}
	}

	// Delete one instance's memory series: the next answer misses the
	// cache and no longer has that instance.
	deleteSeries(t, fp.url(), "cached", url.Values{"match[]": {`node_memory_MemAvailable_bytes{instance="h1"}`}})
	misses := metricSum(t, metrics, "fluxpulse_query_frontend_results_cache_misses_total", nil)
	after := ask(end.Add(time.Minute))
	if m := metricSum(t, metrics, "fluxpulse_query_frontend_results_cache_misses_total", nil) - misses; m < 3 {
		t.Fatalf("%v cache misses after the deletion request, want every day", m)
	}
	if strings.Contains(key(after), `"instance":"h1"`) || !strings.Contains(key(after), `"instance":"h2"`) {
		t.Fatalf("after the deletion: %s", short(after))
	}
}
