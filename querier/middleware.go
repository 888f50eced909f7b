package querier

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Record describes one finished read request, for usage accounting and the
// audit log.
type Record struct {
	Tenants  []string
	Actor    string
	Path     string
	Query    string // the PromQL text, or the match[] selectors
	Status   int
	Bytes    int64
	Duration time.Duration
	Stats    *Stats
}

// Observer is told about every finished read request.
type Observer func(r *http.Request, rec Record)

// concurrency counts running queries per tenant.
type concurrency struct {
	m sync.Map // tenant -> *atomic.Int64
}

func (c *concurrency) counter(tenant string) *atomic.Int64 {
	v, ok := c.m.Load(tenant)
	if !ok {
		v, _ = c.m.LoadOrStore(tenant, new(atomic.Int64))
	}
	return v.(*atomic.Int64)
}

// limit applies the per-tenant PromQL guard, concurrency limit and query
// timeout, counts what the request reads, and reports it to the observer.
func (q *Querier) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ids, err := tenantauth.Tenants(r.Context())
		if err != nil {
			WriteError(w, r, http.StatusUnauthorized, err.Error())
			return
		}
		// The guard parses the form, so that the record below sees it too
		// (handlers get a copy of the request), and bounds the PromQL
		// before any handler parses it.
		if !q.guard(w, r, ids) {
			return
		}
		timeout := q.cfg.Timeout
		var taken []*atomic.Int64
		defer func() {
			for _, c := range taken {
				c.Add(-1)
			}
		}()
		for _, id := range ids {
			lim := q.limits.Limits(id)
			if lim.QueryTimeout > 0 && lim.QueryTimeout < timeout {
				timeout = lim.QueryTimeout
			}
			c := q.running.counter(id)
			if n := c.Add(1); lim.MaxConcurrentQueries > 0 && n > int64(lim.MaxConcurrentQueries) {
				c.Add(-1)
				WriteError(w, r, http.StatusTooManyRequests, fmt.Sprintf("tenant %s runs %d queries already, the limit is %d (%s); retry later",
					id, n-1, lim.MaxConcurrentQueries, limits.Source(limits.FlagMaxConcurrentQueries)))
				return
			}
			taken = append(taken, c)
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		stats := NewStats(ids)
		rw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rw, r.WithContext(WithStats(ctx, stats)))
		if q.observer != nil {
			query := r.FormValue("query")
			if query == "" {
				query = fmt.Sprint(r.Form["match[]"])
			}
			q.observer(r, Record{Tenants: ids, Actor: tenantauth.Actor(r.Context()), Path: r.URL.Path, Query: query,
				Status: rw.status, Bytes: rw.bytes, Duration: time.Since(start), Stats: stats})
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
