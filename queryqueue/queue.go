package queryqueue

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/limits"
)

// Flag names, used in error messages.
const (
	FlagQuerierWorkers  = "query-frontend.querier-workers"
	FlagMaxOutstanding  = "query-frontend.max-outstanding-requests-per-tenant"
	federationSeparator = "|" // as tenantauth.FederationSeparator
)

// Config configures a Queue.
type Config struct {
	// QuerierWorkers is how many sub-queries run at once over all
	// tenants: the queriers' count times the queries each should run at
	// once (Cortex and Mimir: -querier.max-concurrent per querier); 0 is
	// GOMAXPROCS, at least 2.
	QuerierWorkers int
	// MaxOutstandingPerTenant bounds the requests one tenant has waiting.
	MaxOutstandingPerTenant int
}

// RegisterFlags registers the flags of the queue.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.QuerierWorkers, FlagQuerierWorkers, 0, "Sub-queries the query frontend runs at once against its queriers, over every tenant; the rest wait in per-tenant queues served round-robin. One tenant never holds every worker: one stays free for another tenant's next sub-query. With roles apart set it to the queriers' count times the queries each should run at once, about their cores (Cortex and Mimir's -querier.max-concurrent per querier). 0 means GOMAXPROCS (at least 2), for the querier in this process.")
	fs.IntVar(&c.MaxOutstandingPerTenant, FlagMaxOutstanding, 100, "Sub-queries one tenant may have waiting in the query frontend's queue; more are refused with 429.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.QuerierWorkers < 0 {
		return fmt.Errorf("-%s must not be negative, got %d", FlagQuerierWorkers, c.QuerierWorkers)
	}
	if c.MaxOutstandingPerTenant <= 0 {
		return fmt.Errorf("-%s must be positive, got %d", FlagMaxOutstanding, c.MaxOutstandingPerTenant)
	}
	return nil
}

// Limits answers a tenant's limits; the Queue reads MaxQueryParallelism.
// It is called under the Queue's mutex and must not block.
type Limits interface {
	Limits(tenant string) limits.Limits
}

// ErrTooManyOutstanding is what TooManyOutstandingError matches with
// errors.Is.
var ErrTooManyOutstanding = errors.New("too many outstanding requests")

// TooManyOutstandingError refuses a request of a tenant whose queue is
// full. The HTTP layer answers it with 429.
type TooManyOutstandingError struct {
	Tenant string
	Limit  int
}

func (e *TooManyOutstandingError) Error() string {
	return fmt.Sprintf("too many outstanding requests: tenant %s has %d queries waiting in the query frontend, the limit is %d (-%s); retry later",
		e.Tenant, e.Limit, e.Limit, FlagMaxOutstanding)
}

// Is makes errors.Is(err, ErrTooManyOutstanding) true.
func (e *TooManyOutstandingError) Is(target error) bool { return target == ErrTooManyOutstanding }

// Queue queues requests per tenant and runs them on a fixed number of
// worker slots. It is safe for concurrent use.
type Queue struct {
	cfg     Config
	workers int
	limits  Limits
	logger  *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	free    int
	tenants map[string]*tenantQueue
	ring    []string // tenants with waiting requests, in round-robin order
	next    int      // index in ring of the tenant served next
}

type tenantQueue struct {
	waiting []*request
	active  int // slots held
}

type request struct {
	enqueued time.Time
	ready    chan struct{} // closed when granted
	granted  bool
	wait     time.Duration
}

// New returns a Queue. A nil logger discards; a nil reg registers no
// metrics.
func New(cfg Config, lim Limits, logger *slog.Logger, reg prometheus.Registerer) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	workers := cfg.QuerierWorkers
	if workers == 0 {
		workers = max(2, runtime.GOMAXPROCS(0))
	}
	q := &Queue{cfg: cfg, workers: workers, limits: lim, logger: logger, free: workers, tenants: map[string]*tenantQueue{}}
	q.metrics = newMetrics(reg, workers, q.busy)
	return q, nil
}

// Do waits for a worker slot for tenant (a tenant ID, or several joined
// by "|" for a federated query), then runs fn on the caller's goroutine with
// ctx, which then also carries the time the request waited (see Wait). It
// returns fn's error, ctx's error if ctx ends while the request waits, or
// a *TooManyOutstandingError.
func (q *Queue) Do(ctx context.Context, tenant string, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := q.enqueue(tenant)
	if err != nil {
		return err
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		if !q.cancel(tenant, r) {
			// Granted while ctx ended: give the slot back.
			q.release(tenant)
		}
		q.metrics.cancelled.Inc()
		return ctx.Err()
	}
	q.metrics.duration.Observe(r.wait.Seconds())
	defer q.release(tenant)
	return fn(context.WithValue(ctx, waitKey{}, r.wait))
}

type waitKey struct{}

// Wait returns how long the request whose function got ctx waited in the
// queue; 0 for a context that did not come from Do.
func Wait(ctx context.Context) time.Duration {
	d, _ := ctx.Value(waitKey{}).(time.Duration)
	return d
}

func (q *Queue) enqueue(tenant string) (*request, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	tq := q.tenants[tenant]
	if tq == nil {
		tq = &tenantQueue{}
		q.tenants[tenant] = tq
	}
	if len(tq.waiting) >= q.cfg.MaxOutstandingPerTenant {
		q.metrics.discarded.WithLabelValues(tenant).Inc()
		return nil, &TooManyOutstandingError{Tenant: tenant, Limit: q.cfg.MaxOutstandingPerTenant}
	}
	r := &request{enqueued: time.Now(), ready: make(chan struct{})}
	if len(tq.waiting) == 0 {
		// Join the ring just before the tenant served next, so that a new
		// tenant waits for a whole turn at most.
		q.ring = insertAt(q.ring, q.next, tenant)
		q.next++
		if q.next == len(q.ring) {
			q.next = 0
		}
	}
	tq.waiting = append(tq.waiting, r)
	q.metrics.length.WithLabelValues(tenant).Inc()
	q.dispatch()
	return r, nil
}

// cancel removes r from its tenant's queue; false if r was granted.
func (q *Queue) cancel(tenant string, r *request) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r.granted {
		return false
	}
	tq := q.tenants[tenant]
	for i, w := range tq.waiting {
		if w == r {
			tq.waiting = append(tq.waiting[:i], tq.waiting[i+1:]...)
			break
		}
	}
	q.metrics.length.WithLabelValues(tenant).Dec()
	if len(tq.waiting) == 0 {
		q.leaveRing(tenant)
	}
	q.forget(tenant, tq)
	return true
}

func (q *Queue) release(tenant string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	tq := q.tenants[tenant]
	tq.active--
	q.free++
	q.forget(tenant, tq)
	q.dispatch()
}

// forget drops the state of a tenant that neither waits nor runs, so
// tenants that come and go leave nothing behind.
func (q *Queue) forget(tenant string, tq *tenantQueue) {
	if len(tq.waiting) == 0 && tq.active == 0 {
		delete(q.tenants, tenant)
		q.metrics.length.DeleteLabelValues(tenant)
	}
}

// dispatch hands free slots to the heads of the tenants' queues in ring
// order, skipping tenants at their parallelism limit.
func (q *Queue) dispatch() {
	for q.free > 0 && len(q.ring) > 0 {
		granted := false
		for range len(q.ring) {
			tenant := q.ring[q.next]
			tq := q.tenants[tenant]
			if tq.active >= q.maxHeld(tenant) {
				q.next = (q.next + 1) % len(q.ring)
				continue
			}
			q.grant(tenant, tq)
			granted = true
			break
		}
		if !granted {
			return // every waiting tenant is at its limit
		}
	}
}

// grant gives a slot to the head of tenant's queue and moves the ring on.
func (q *Queue) grant(tenant string, tq *tenantQueue) {
	r := tq.waiting[0]
	tq.waiting[0] = nil
	tq.waiting = tq.waiting[1:]
	tq.active++
	q.free--
	r.granted = true
	r.wait = time.Since(r.enqueued)
	close(r.ready)
	q.metrics.length.WithLabelValues(tenant).Dec()
	if len(tq.waiting) == 0 {
		q.leaveRing(tenant) // leaves next on the tenant after it
		return
	}
	q.next = (q.next + 1) % len(q.ring)
}

func (q *Queue) leaveRing(tenant string) {
	for i, t := range q.ring {
		if t != tenant {
			continue
		}
		q.ring = append(q.ring[:i], q.ring[i+1:]...)
		if i < q.next {
			q.next--
		}
		if q.next >= len(q.ring) {
			q.next = 0
		}
		return
	}
}

// maxHeld is the slots tenant may hold: its max_query_parallelism, and
// never every slot (when there are several): one stays for the next
// request of another tenant, which then starts at once instead of waiting
// for a piece of a flood to finish.
func (q *Queue) maxHeld(tenant string) int {
	held := max(1, q.workers-1)
	if limit := q.parallelism(tenant); limit > 0 {
		held = min(held, limit)
	}
	return held
}

// parallelism is the slots tenant may hold: its max_query_parallelism,
// the smallest of them for a federated tenant set; 0 means no limit.
func (q *Queue) parallelism(tenant string) int {
	if q.limits == nil {
		return 0
	}
	lowest := 0
	for t := range strings.SplitSeq(tenant, federationSeparator) {
		if n := q.limits.Limits(t).MaxQueryParallelism; n > 0 && (lowest == 0 || n < lowest) {
			lowest = n
		}
	}
	return lowest
}

func (q *Queue) busy() float64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return float64(q.workers - q.free)
}

func insertAt(s []string, i int, v string) []string {
	s = append(s, "")
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}
