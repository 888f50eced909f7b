// Package pushertest is the conformance suite every distributor.Pusher
// passes: the ingester in process and the replicating pusher over gRPC
// alike. It checks what a push stores, what it refuses and how it counts
// both, as a remote-write sender sees it.
package pushertest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Pusher is what is under test: distributor.Pusher.
type Pusher interface {
	Push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error)
}

// Reader reads back what a tenant stored.
type Reader interface {
	Querier(ctx context.Context, tenant string, mint, maxt int64) (storage.Querier, error)
}

// Target is one Pusher with a way to read what it stored. New must return
// a target with no data.
type Target struct {
	Pusher Pusher
	Reader Reader
	// Settle, if set, waits until what the pushes so far started is over:
	// a replicating pusher answers once a quorum stored a push, and its
	// other replica writes may still be under way (and overtaken by the
	// next push's) when it returns.
	Settle func()
}

// Run runs the suite against the targets new makes, one per test.
func Run(t *testing.T, new func(t *testing.T) Target) {
	t.Run("stores and counts once", func(t *testing.T) { storesAndCounts(t, new(t)) })
	t.Run("refuses what is older than stored", func(t *testing.T) { refusesOlder(t, new(t)) })
	t.Run("keeps tenants apart", func(t *testing.T) { keepsTenantsApart(t, new(t)) })
}

func series(name, instance string, samples ...remotewrite.Sample) remotewrite.Series {
	return remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: name}, {Name: "instance", Value: instance}}, Samples: samples}
}

// ctxFor is the context of a request of tenant, as tenantauth makes it.
func ctxFor(t *testing.T, tenant string) context.Context {
	return tenantauth.With(t.Context(), "pushertest", tenant)
}

// push retries while the target is not ready yet (a fresh ingester
// replaying nothing still needs a moment), up to a deadline.
func push(t *testing.T, tg Target, tenant string, req *remotewrite.Request) remotewrite.Result {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := tg.Pusher.Push(ctxFor(t, tenant), tenant, req)
		if tg.Settle != nil {
			tg.Settle()
		}
		if err == nil {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("push: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// read returns every sample of the tenant, "labels value@ts" sorted.
func read(t *testing.T, tg Target, tenant string) []string {
	t.Helper()
	ctx := ctxFor(t, tenant)
	q, err := tg.Reader.Querier(ctx, tenant, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var out []string
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out = append(out, fmt.Sprintf("%s %g@%d", s.Labels(), v, ts))
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func storesAndCounts(t *testing.T, tg Target) {
	now := time.Now().UnixMilli()
	req := &remotewrite.Request{Version: remotewrite.V2, Series: []remotewrite.Series{
		series("up", "a", remotewrite.Sample{Timestamp: now - 2000, Value: 1}, remotewrite.Sample{Timestamp: now - 1000, Value: 1}),
		series("up", "b", remotewrite.Sample{Timestamp: now - 1000, Value: 0}),
	}}
	req.Series[0].Exemplars = []remotewrite.Exemplar{{Labels: []labels.Label{{Name: "trace_id", Value: "t1"}}, Value: 1, Timestamp: now - 1000}}
	req.Series[1].Metadata = remotewrite.Metadata{Type: model.MetricTypeGauge, Help: "Whether the target is up."}
	res := push(t, tg, "team-a", req)
	if res.Samples != 3 || res.Exemplars != 1 || res.Rejected() {
		t.Fatalf("result %+v (%s), want 3 samples and 1 exemplar stored, nothing refused: each counted once", res, res.Message(2))
	}
	if got := read(t, tg, "team-a"); len(got) != 3 {
		t.Fatalf("read back %v, want 3 samples", got)
	}
}

func refusesOlder(t *testing.T, tg Target) {
	now := time.Now().UnixMilli()
	push(t, tg, "team-a", &remotewrite.Request{Version: remotewrite.V1, Series: []remotewrite.Series{
		series("up", "a", remotewrite.Sample{Timestamp: now, Value: 1}),
	}})
	res := push(t, tg, "team-a", &remotewrite.Request{Version: remotewrite.V1, Series: []remotewrite.Series{
		series("up", "a", remotewrite.Sample{Timestamp: now - 60_000, Value: 2}),
		series("up", "b", remotewrite.Sample{Timestamp: now, Value: 3}),
	}})
	if res.Samples != 1 || res.RejectedSamples != 1 || !strings.Contains(res.Message(2), "out-of-order") {
		t.Fatalf("result %+v: %s; want the older sample refused as out of order and the other stored", res, res.Message(2))
	}
	got := read(t, tg, "team-a")
	if len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), `instance="a"} 1@`) {
		t.Fatalf("read back %v, want the first sample of a and the one of b", got)
	}
}

func keepsTenantsApart(t *testing.T, tg Target) {
	now := time.Now().UnixMilli()
	push(t, tg, "team-a", &remotewrite.Request{Version: remotewrite.V1, Series: []remotewrite.Series{
		series("secret_of_a", "x", remotewrite.Sample{Timestamp: now, Value: 1}),
	}})
	if got := read(t, tg, "team-b"); len(got) != 0 {
		t.Fatalf("team-b reads %v", got)
	}
}
