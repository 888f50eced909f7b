package distributor_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/hatracker"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// TestHADeduplication pushes the same series from the two replicas of a
// Prometheus HA pair: the first is elected and stored without its replica
// label, the other is answered 202 and dropped (#17).
func TestHADeduplication(t *testing.T) {
	d, ing, dir := newDistributorWith(t, func(l *limits.Limits, _ *distributor.Config) { l.AcceptHASamples = true }, nil)
	tr, err := hatracker.New(hatracker.Config{Enabled: true, FailoverTimeout: time.Minute, UpdateTimeout: 10 * time.Second,
		ClusterLabel: "cluster", ReplicaLabel: "__replica__"}, hatracker.NewMemStore(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.SetHATracker(tr)
	auth, err := tenantauth.New(tenantauth.Config{Mode: "header"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(auth.Middleware(tenantauth.ScopeWrite, tenantauth.PlainError, d))
	t.Cleanup(srv.Close)
	e := &env{url: srv.URL, dir: dir, ing: ing}
	now := time.Now().UnixMilli()
	body := func(replica string, ts int64) []byte {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "__replica__", Value: replica},
			{Name: "cluster", Value: "eu-1"}, {Name: "job", Value: "node"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ts}}}
		return encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}})
	}
	if r := e.post(t, "team-a", ctV1, "snappy", body("a", now)); r.status != http.StatusNoContent {
		t.Fatalf("elected replica: %d %s", r.status, r.body)
	}
	if r := e.post(t, "team-a", ctV1, "snappy", body("b", now+1)); r.status != http.StatusAccepted {
		t.Fatalf("other replica: %d %s, want 202", r.status, r.body)
	}
	if r := e.post(t, "team-a", ctV1, "snappy", body("a", now+2)); r.status != http.StatusNoContent {
		t.Fatalf("elected replica again: %d %s", r.status, r.body)
	}
	if n := e.count(t, "team-a", "up"); n != 2 {
		t.Fatalf("%d samples stored, want the elected replica's 2", n)
	}
	q, err := ing.Querier(t.Context(), "team-a", 0, now+10)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == "__replica__" {
			t.Fatalf("the replica label was stored: %v", names)
		}
	}
}
