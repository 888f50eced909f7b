package ingester

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// longSeries returns a request of n samples, one a second from start, for
// one series: enough samples for the head to cut and map chunks to disk.
func longSeries(name string, start int64, n int) *remotewrite.Request {
	s := remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "j"}}}
	for k := range n {
		s.Samples = append(s.Samples, remotewrite.Sample{Timestamp: start + int64(k)*1000, Value: float64(k)})
	}
	return &remotewrite.Request{Version: remotewrite.V1, Series: []remotewrite.Series{s}}
}

// readAll selects every series of the tenant and reads every sample.
func readAll(ctx context.Context, ing *Ingester, tenant string) error {
	q, err := ing.Querier(ctx, tenant, math.MinInt64, math.MaxInt64)
	if err != nil {
		return err
	}
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
		}
		if err := it.Err(); err != nil {
			return errors.Join(err, q.Close())
		}
	}
	return errors.Join(ss.Err(), q.Close())
}

// TestDeleteTenantDuringPushesAndQueries deletes a tenant again and again
// while pushes and queries for it are in flight (#12: deletion closed a TSDB
// that a push or a query still held). Every push must succeed, into the
// TSDB before the deletion or into the new one after it, and every query
// must read without error. Run it with -race.
func TestDeleteTenantDuringPushesAndQueries(t *testing.T) {
	ing := testIngester(t, t.TempDir(), nil)
	start := time.Now().Add(-time.Hour).UnixMilli()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var done atomic.Int64 // pushes and queries finished
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	// loop calls f with 0, 1, 2, … until stop is closed.
	loop := func(f func(r int)) {
		wg.Go(func() {
			for r := 0; ; r++ {
				select {
				case <-stop:
					return
				default:
					f(r)
				}
			}
		})
	}
	for w := range 3 {
		loop(func(r int) {
			// Each round is a new series: after a deletion it is not out of
			// order against what the deleted TSDB held.
			res, err := ing.Push(t.Context(), "doomed", longSeries(fmt.Sprintf("m_%d_%d", w, r), start, 300))
			if err != nil || res.Rejected() {
				report(fmt.Errorf("push %d/%d: %v %s", w, r, err, res.Message(1)))
			}
			done.Add(1)
		})
	}
	for range 2 {
		loop(func(int) {
			if err := readAll(t.Context(), ing, "doomed"); err != nil {
				report(fmt.Errorf("query: %w", err))
			}
			done.Add(1)
		})
	}
	for range 10 {
		// Each deletion comes after pushes and queries of the TSDB it deletes.
		seen := done.Load()
		deadline := time.Now().Add(30 * time.Second)
		for done.Load() < seen+5 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if err := ing.DeleteTenant("doomed"); err != nil {
			report(fmt.Errorf("delete: %w", err))
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPushWaitsForOpenOnlyAsLongAsItsContext pushes to a tenant whose TSDB
// is still replaying a large WAL with a context that ends first: the push
// must give up with the context's error rather than wait for the replay
// (#12: Push waited with no deadline).
func TestPushWaitsForOpenOnlyAsLongAsItsContext(t *testing.T) {
	dir := t.TempDir()
	cfg, lim := defaults()
	cfg.Dir = dir
	// A WAL of 200,000 samples in 2,000 series: its replay takes far longer
	// than the push's context lasts on any machine.
	func() {
		ing, err := New(cfg, limits.NewOverrides(lim), nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ing.Close()
		start := time.Now().Add(-time.Hour).UnixMilli()
		for s := range 2000 {
			if _, err := ing.Push(t.Context(), "big", longSeries(fmt.Sprintf("m%d", s), start, 100)); err != nil {
				t.Fatal(err)
			}
		}
	}()
	ing, err := New(cfg, limits.NewOverrides(lim), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ing.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	_, err = ing.Push(ctx, "big", longSeries("late", time.Now().UnixMilli(), 1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("push while the TSDB opens: %v, want the context's deadline", err)
	}
	// A push with time to wait gets through once the replay is done.
	if _, err := ing.Push(t.Context(), "big", longSeries("late", time.Now().UnixMilli(), 1)); err != nil {
		t.Fatal(err)
	}
}
