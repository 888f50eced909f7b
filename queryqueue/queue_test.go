package queryqueue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fluxpulse/fluxpulse/limits"
)

// harness runs requests whose functions block until the test lets them
// finish, and records the order in which they started.
type harness struct {
	t       *testing.T
	q       *Queue
	reg     *prometheus.Registry
	started chan string
	mu      sync.Mutex
	gates   map[string]chan struct{}
	errs    map[string]chan error
}

func newHarness(t *testing.T, cfg Config, tenants map[string]limits.Limits) *harness {
	t.Helper()
	var def limits.Limits
	def.MaxQueryParallelism = 14
	o := limits.NewOverrides(def)
	o.Set(def, tenants)
	reg := prometheus.NewRegistry()
	q, err := New(cfg, o, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, q: q, reg: reg, started: make(chan string, 1000),
		gates: map[string]chan struct{}{}, errs: map[string]chan error{}}
}

// submit starts a request named name for tenant and returns once it is
// queued or running.
func (h *harness) submit(ctx context.Context, tenant, name string) {
	h.t.Helper()
	gate, done := make(chan struct{}), make(chan error, 1)
	h.mu.Lock()
	h.gates[name], h.errs[name] = gate, done
	h.mu.Unlock()
	before := h.pending(tenant)
	go func() {
		done <- h.q.Do(ctx, tenant, func(context.Context) error {
			h.started <- name
			<-gate
			return nil
		})
	}()
	h.until(func() bool { return h.pending(tenant) > before }, "request %s of %s is queued", name, tenant)
}

// pending is how many requests of tenant wait or run.
func (h *harness) pending(tenant string) int {
	h.q.mu.Lock()
	defer h.q.mu.Unlock()
	tq := h.q.tenants[tenant]
	if tq == nil {
		return 0
	}
	return len(tq.waiting) + tq.active
}

func (h *harness) next() string {
	h.t.Helper()
	select {
	case n := <-h.started:
		return n
	case <-time.After(10 * time.Second):
		h.t.Fatal("no request started within 10s")
		return ""
	}
}

func (h *harness) finish(name string) error {
	h.t.Helper()
	h.mu.Lock()
	gate, done := h.gates[name], h.errs[name]
	h.mu.Unlock()
	close(gate)
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatalf("request %s did not return within 10s", name)
		return nil
	}
}

func (h *harness) until(cond func() bool, format string, args ...any) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting until "+format, args...)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFairness: tenant a queues 30 requests before tenant b queues 5; with
// one worker, b's requests alternate with a's instead of waiting behind
// them, and each tenant's requests run in the order they came.
func TestFairness(t *testing.T) {
	h := newHarness(t, Config{QuerierWorkers: 1, MaxOutstandingPerTenant: 100}, nil)
	for i := range 30 {
		h.submit(t.Context(), "a", fmt.Sprintf("a%d", i))
	}
	for i := range 5 {
		h.submit(t.Context(), "b", fmt.Sprintf("b%d", i))
	}
	var order []string
	for range 35 {
		n := h.next()
		order = append(order, n)
		if err := h.finish(n); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(order[:12], " ")
	if want := "a0 a1 b0 a2 b1 a3 b2 a4 b3 a5 b4 a6"; got != want {
		t.Fatalf("order of service %s, want %s", got, want)
	}
	for i, n := range order[12:] {
		if want := fmt.Sprintf("a%d", i+7); n != want {
			t.Fatalf("service %d is %s, want %s (FIFO per tenant)", i+12, n, want)
		}
	}
	if n := testutil.CollectAndCount(h.reg, "fluxpulse_query_frontend_queue_length"); n != 0 {
		t.Fatalf("%d queue length series left for idle tenants", n)
	}
}

// TestMaxQueryParallelism: a tenant holds at most its max_query_parallelism
// workers (the smallest of a federated set's), never the last free one, and
// the other workers go to other tenants at once.
func TestMaxQueryParallelism(t *testing.T) {
	lim := func(n int) limits.Limits { return limits.Limits{MaxQueryParallelism: n} }
	for _, tc := range []struct {
		name, tenant string
		limit        int
	}{
		{"own limit", "a", 3},
		{"federated: smallest", "a|c", 2},
		{"zero: every worker but one", "z", 7},
		{"default (14): every worker but one", "d", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{QuerierWorkers: 8, MaxOutstandingPerTenant: 100},
				map[string]limits.Limits{"a": lim(3), "c": lim(2), "z": lim(0)})
			for i := range 10 {
				h.submit(t.Context(), tc.tenant, fmt.Sprintf("x%d", i))
			}
			for range tc.limit {
				h.next()
			}
			if busy := h.q.busy(); int(busy) != tc.limit {
				t.Fatalf("%v workers busy, want %d", busy, tc.limit)
			}
			h.submit(t.Context(), "b", "b0")
			if n := h.next(); n != "b0" {
				t.Fatalf("%s started, want b0 on a free worker", n)
			}
			if err := h.finish("b0"); err != nil {
				t.Fatal(err)
			}
			h.finish("x0")
			if n := h.next(); n != fmt.Sprintf("x%d", tc.limit) {
				t.Fatalf("%s started after x0 finished, want x%d", n, tc.limit)
			}
		})
	}
}

// TestTooManyOutstanding: over -query-frontend.max-outstanding-requests-per-tenant
// waiting requests, Do refuses at once with an error naming the limit; other
// tenants are not affected.
func TestTooManyOutstanding(t *testing.T) {
	h := newHarness(t, Config{QuerierWorkers: 1, MaxOutstandingPerTenant: 3}, nil)
	for i := range 4 { // one runs, three wait
		h.submit(t.Context(), "a", fmt.Sprintf("a%d", i))
	}
	err := h.q.Do(t.Context(), "a", func(context.Context) error { t.Error("ran over the limit"); return nil })
	var tm *TooManyOutstandingError
	if !errors.As(err, &tm) || !errors.Is(err, ErrTooManyOutstanding) || tm.Limit != 3 {
		t.Fatalf("got %v, want TooManyOutstandingError with limit 3", err)
	}
	if !strings.Contains(err.Error(), "-"+FlagMaxOutstanding) || !strings.Contains(err.Error(), "tenant a") {
		t.Fatalf("error %q does not name the tenant and the flag", err)
	}
	if v := testutil.ToFloat64(h.q.metrics.discarded.WithLabelValues("a")); v != 1 {
		t.Fatalf("discarded_requests_total{tenant=a} = %v, want 1", v)
	}
	h.submit(t.Context(), "b", "b0")
	if v := testutil.ToFloat64(h.q.metrics.length.WithLabelValues("a")); v != 3 {
		t.Fatalf("queue_length{tenant=a} = %v, want 3", v)
	}
}

// TestCancel: a request whose context ends while it waits returns the
// context's error at once, leaves the queue and never runs.
func TestCancel(t *testing.T) {
	h := newHarness(t, Config{QuerierWorkers: 1, MaxOutstandingPerTenant: 100}, nil)
	h.submit(t.Context(), "a", "a0")
	h.next()
	ctx, cancel := context.WithCancel(t.Context())
	h.submit(ctx, "a", "a1")
	h.submit(t.Context(), "a", "a2")
	cancel()
	h.mu.Lock()
	done := h.errs["a1"]
	h.mu.Unlock()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled request still waiting after 10s")
	}
	if n := h.pending("a"); n != 2 {
		t.Fatalf("%d requests of a pending, want 2", n)
	}
	h.finish("a0")
	if n := h.next(); n != "a2" {
		t.Fatalf("%s started, want a2", n)
	}
	h.finish("a2")
	if err := h.q.Do(ctx, "a", func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with an ended context: %v", err)
	}
	if v := testutil.ToFloat64(h.q.metrics.cancelled); v != 1 {
		t.Fatalf("cancelled = %v, want 1 (an ended context never queues)", v)
	}
}

// TestWait: the function sees how long its request waited, at least as
// long as the worker it waited for was held after it was queued.
func TestWait(t *testing.T) {
	h := newHarness(t, Config{QuerierWorkers: 1, MaxOutstandingPerTenant: 100}, nil)
	h.submit(t.Context(), "a", "a0")
	h.next()
	got := make(chan time.Duration, 1)
	go func() {
		_ = h.q.Do(t.Context(), "b", func(ctx context.Context) error { got <- Wait(ctx); return nil })
	}()
	h.until(func() bool { return h.pending("b") == 1 }, "b is queued")
	queued := time.Now()
	time.Sleep(20 * time.Millisecond) // the wait to measure, not a synchronisation
	held := time.Since(queued)
	h.finish("a0")
	if w := <-got; w < held {
		t.Fatalf("Wait = %s, want at least %s", w, held)
	}
	if n := testutil.CollectAndCount(h.reg, "fluxpulse_query_frontend_queue_duration_seconds"); n != 1 {
		t.Fatalf("queue_duration_seconds has %d series", n)
	}
	if Wait(t.Context()) != 0 {
		t.Fatal("Wait of a context not from Do is not 0")
	}
}

// TestConcurrent: many tenants, random cancellations and limits; no
// tenant ever holds more than its limit, every slot comes back and no
// tenant state is left. Run with -race.
func TestConcurrent(t *testing.T) {
	two := limits.Limits{MaxQueryParallelism: 2}
	h := newHarness(t, Config{QuerierWorkers: 4, MaxOutstandingPerTenant: 1000}, map[string]limits.Limits{"0": two, "1": two})
	limit := [5]int64{2, 2, 3, 3, 3} // max_query_parallelism; else every worker but one
	var wg sync.WaitGroup
	var active [5]atomic.Int64
	for i := range 500 {
		tenant := i % 5
		wg.Go(func() {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if rand.IntN(4) == 0 {
				go cancel()
			}
			_ = h.q.Do(ctx, fmt.Sprint(tenant), func(context.Context) error {
				if n := active[tenant].Add(1); n > limit[tenant] {
					t.Errorf("tenant %d holds %d workers", tenant, n)
				}
				time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
				active[tenant].Add(-1)
				return nil
			})
		})
	}
	wg.Wait()
	h.q.mu.Lock()
	defer h.q.mu.Unlock()
	if h.q.free != 4 || len(h.q.tenants) != 0 || len(h.q.ring) != 0 {
		t.Fatalf("free %d, tenants %d, ring %v after every request returned", h.q.free, len(h.q.tenants), h.q.ring)
	}
}

// TestDefaultWorkers: 0 workers means GOMAXPROCS, at least 2.
func TestDefaultWorkers(t *testing.T) {
	q, err := New(Config{MaxOutstandingPerTenant: 1}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := max(2, runtime.GOMAXPROCS(0)); q.workers != want || q.free != want {
		t.Fatalf("%d workers, want %d", q.workers, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{-1, 1}, {1, 0}} {
		if _, err := New(c, nil, nil, nil); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// BenchmarkDo is the queue's own cost per request: 16 tenants, 8 workers,
// functions that return at once.
func BenchmarkDo(b *testing.B) {
	q, err := New(Config{QuerierWorkers: 8, MaxOutstandingPerTenant: 1 << 20}, nil, nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		tenant := fmt.Sprint(n.Add(1) % 16)
		for pb.Next() {
			if err := q.Do(context.Background(), tenant, func(context.Context) error { return nil }); err != nil {
				b.Error(err)
			}
		}
	})
}
