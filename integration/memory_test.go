package integration

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/fluxpulse/fluxpulse/loadgen"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// rss returns the resident memory of a process (vmRSS), failing the test
// if it cannot be read.
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	n, err := vmRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// peakRSS samples the process's resident memory until stop is closed, then
// sends the highest figure seen.
func peakRSS(t testing.TB, pid int, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, rss(t, pid))
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// quietTenant pushes and queries as tenant "quiet" until stop is closed,
// and returns its latencies and failures.
type quietTenant struct {
	start    time.Time
	round    int // of pushes: each a second after the last, across runs
	mu       sync.Mutex
	pushes   []time.Duration
	reads    []time.Duration
	failures []string
	wg       sync.WaitGroup
}

func (q *quietTenant) run(t *testing.T, base string, stop <-chan struct{}) {
	series := loadgen.DefaultHost.Series("quiet:9100")
	q.pushes, q.reads, q.failures = nil, nil, nil
	q.wg.Go(func() {
		for ; ; q.round++ {
			select {
			case <-stop:
				return
			default:
			}
			r := q.round
			body := loadgen.EncodeV1(series, 0, r, q.start.Add(time.Duration(r)*time.Second).UnixMilli())
			began := time.Now()
			status, msg := post(t, base, "quiet", "application/x-protobuf", body)
			q.record(&q.pushes, time.Since(began), status != 204, fmt.Sprintf("push: %d %s", status, msg))
		}
	})
	q.wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			began := time.Now()
			status, body := api(t, base+"/prometheus", "/api/v1/query", url.Values{"query": {"count(node_cpu_seconds_total)"}}, "quiet")
			q.record(&q.reads, time.Since(began), status != 200, fmt.Sprintf("query: %d %s", status, body))
		}
	})
}

func (q *quietTenant) record(into *[]time.Duration, d time.Duration, failed bool, what string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	*into = append(*into, d)
	if failed && len(q.failures) < 10 {
		q.failures = append(q.failures, what)
	}
}

func p99(l []time.Duration) time.Duration {
	if len(l) == 0 {
		return 0
	}
	l = slices.Clone(l)
	slices.Sort(l)
	return l[(len(l)*99)/100]
}

// postMany posts body n times, par at once, and counts the answers by status.
func postMany(t *testing.T, base string, body []byte, n, par int) map[int]int {
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	for range par {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				status, _ := post(t, base, "attacker", "application/x-protobuf", body)
				mu.Lock()
				counts[status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts
}

// TestSnappyBodiesCannotExhaustMemory attacks a real FluxPulse with request
// bodies that make it allocate what their snappy header claims (#12: 200
// six-byte bodies claiming 63 MiB each, 50 at once, took resident memory
// from 347 MB to 3.7 GB): first those lying bodies, then honest ones that
// really decompress to 60 MiB each. Resident memory stays within 256 MiB of
// its idle figure, a second tenant's pushes and queries keep answering
// within a second (p99), and once the attack is over the memory is handed
// back.
func TestSnappyBodiesCannotExhaustMemory(t *testing.T) {
	fp := startFluxPulse(t, "-auth.mode=header")
	pid := fp.proc.Pid()
	lying := append(binary.AppendUvarint(nil, 63<<20), 0x00, 'x')
	honest := snappy.Encode(nil, make([]byte, 60<<20))
	// Warm up: the quiet tenant's TSDB, the query engine, the buffers.
	warm := make(chan struct{})
	q := &quietTenant{start: time.Now().Add(-time.Hour)}
	q.run(t, fp.url(), warm)
	testbin.Eventually(t, time.Minute, func() error {
		q.mu.Lock()
		defer q.mu.Unlock()
		if len(q.pushes) < 20 || len(q.reads) < 20 {
			return fmt.Errorf("warm-up: %d pushes and %d queries so far", len(q.pushes), len(q.reads))
		}
		return nil
	})
	close(warm)
	q.wg.Wait()
	idle := rss(t, pid)

	stop := make(chan struct{})
	q.run(t, fp.url(), stop)
	phase := func(body []byte, rounds, n int) (answers []map[int]int, peak int64) {
		done := make(chan struct{})
		top := peakRSS(t, pid, done)
		for range rounds {
			answers = append(answers, postMany(t, fp.url(), body, n, 50))
		}
		close(done)
		return answers, <-top
	}
	lyingAnswers, lyingPeak := phase(lying, 3, 200)
	honestAnswers, honestPeak := phase(honest, 2, 100)
	close(stop)
	q.wg.Wait()
	top := max(lyingPeak, honestPeak)
	t.Logf("resident memory: idle %d MiB, peak under the lying bodies %d MiB, under the honest ones %d MiB; lying bodies answered %v, honest 60 MiB ones %v",
		idle>>20, lyingPeak>>20, honestPeak>>20, lyingAnswers, honestAnswers)
	t.Logf("quiet tenant under attack: %d pushes p99 %s, %d queries p99 %s", len(q.pushes), p99(q.pushes), len(q.reads), p99(q.reads))
	for _, a := range lyingAnswers {
		if a[400] != 200 {
			t.Errorf("lying bodies answered %v, want 400 for all 200", a)
		}
	}
	for _, a := range honestAnswers {
		if a[400]+a[503] != 100 || a[503] == 0 {
			t.Errorf("honest 60 MiB bodies answered %v, want 400 (they are no protobuf) or 503 over -distributor.max-inflight-bytes", a)
		}
	}
	if top-idle > 256<<20 {
		t.Errorf("resident memory rose by %d MiB under attack, more than 256 MiB", (top-idle)>>20)
	}
	for _, f := range q.failures {
		t.Errorf("quiet tenant: %s", f)
	}
	if len(q.pushes) == 0 || len(q.reads) == 0 || p99(q.pushes) > time.Second || p99(q.reads) > time.Second {
		t.Errorf("quiet tenant under attack: %d pushes p99 %s, %d queries p99 %s; want some of each within 1s", len(q.pushes), p99(q.pushes), len(q.reads), p99(q.reads))
	}
	// Idle again: the memory goes back.
	began := time.Now()
	testbin.Eventually(t, 2*time.Minute, func() error {
		if now := rss(t, pid); now-idle > 64<<20 {
			return fmt.Errorf("resident memory %d MiB, idle was %d MiB", now>>20, idle>>20)
		}
		return nil
	})
	t.Logf("resident memory back within 64 MiB of idle %s after the attack", time.Since(began).Round(100*time.Millisecond))
}
