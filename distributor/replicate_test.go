package distributor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// kvRing is a dskit ring with the tokens of the KV store it reads.
type kvRing struct {
	*ring.Ring
	kv kv.Client
}

func (r kvRing) Tokens() []uint32 {
	v, err := r.kv.Get(context.Background(), "ring")
	if err != nil || v == nil {
		return nil
	}
	return v.(*ring.Desc).GetTokens()
}

// testRing is a real dskit ring over an in-memory KV store, with the given
// instances: healthy ones heartbeat now, unhealthy ones an hour ago.
func testRing(t *testing.T, healthy, unhealthy int) kvRing {
	t.Helper()
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	gen := ring.NewRandomTokenGenerator()
	for k := range healthy + unhealthy {
		id := fmt.Sprintf("ing-%d", k)
		inst := desc.AddIngester(id, id+":9095", "", gen.GenerateTokens(128, nil), ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		if k >= healthy {
			inst.Timestamp = time.Now().Add(-time.Hour).Unix()
			desc.Ingesters[id] = inst
		}
	}
	if err := kv.CAS(t.Context(), "ring", func(any) (any, bool, error) { return desc, true, nil }); err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: 3}, "ingester", "ring", kv,
		ring.NewDefaultReplicationStrategy(), nil, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	return kvRing{Ring: r, kv: kv}
}

// replica is a fake ingester: it answers after delay with err, or stores
// everything but, with refuse, one sample of each batch's first series. It only
// injects faults and disagreements a real ingester cannot be made to show
// on demand.
type replica struct {
	delay  time.Duration
	err    error
	refuse bool
	calls  atomic.Int32
	late   atomic.Int32 // calls that saw their context cancelled
	over   atomic.Int32 // calls that returned
}

func (f *replica) Push(ctx context.Context, body []byte) (remotewrite.Result, error) {
	f.calls.Add(1)
	defer f.over.Add(1)
	time.Sleep(f.delay)
	if ctx.Err() != nil {
		f.late.Add(1)
	}
	if f.err != nil {
		return remotewrite.Result{}, f.err
	}
	var r remotewrite.Result
	req := remotewrite.GetRequest()
	defer remotewrite.Release(req)
	if err := remotewrite.DecodeWire(req, body); err != nil {
		return r, err
	}
	r.TrackSeries()
	for k, s := range req.Series {
		r.BeginSeries(k, len(s.Samples), 0, 0)
		if f.refuse && k == 0 {
			r.Samples += len(s.Samples) - 1
			r.Reject(0, 1, "out-of-order sample")
			continue
		}
		r.Samples += len(s.Samples)
	}
	r.EndSeries()
	return r, nil
}

func testRequest(series int) *remotewrite.Request {
	req := &remotewrite.Request{Version: remotewrite.V1}
	for k := range series {
		req.Series = append(req.Series, remotewrite.Series{
			Labels:  []labels.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: fmt.Sprint("host-", k)}},
			Samples: []remotewrite.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 1}},
		})
	}
	return req
}

var errDown = remotewrite.NewError(remotewrite.ErrUnavailable, "connection refused")

// TestQuorum is the table of replica answers and what the push answers:
// success once each series reached 2 of its 3 replicas, counted once;
// 503 naming the quorum otherwise; a refusal by a quorum stays a 4xx.
func TestQuorum(t *testing.T) {
	invalid := remotewrite.NewError(remotewrite.ErrInvalid, "malformed batch")
	cases := []struct {
		name      string
		replicas  [3]replica
		unhealthy int
		status    int    // 0: success
		msg       string // in the error
		samples   int    // stored, one copy
		refused   int
	}{
		{name: "all store", samples: 20},
		{name: "one down", replicas: [3]replica{{err: errDown}}, samples: 20},
		{name: "two down", replicas: [3]replica{{err: errDown}, {err: errDown}}, status: 503, msg: "each series needs 2 of its 3 replicas"},
		{name: "all down", replicas: [3]replica{{err: errDown}, {err: errDown}, {err: errDown}}, status: 503, msg: "write quorum not reached"},
		{name: "two refuse the batch", replicas: [3]replica{{err: invalid}, {err: invalid}}, status: 400, msg: "malformed batch"},
		{name: "one refuses the batch", replicas: [3]replica{{err: invalid}}, samples: 20},
		{name: "first to answer refuses a sample", replicas: [3]replica{{refuse: true}, {delay: 100 * time.Millisecond, refuse: true}, {delay: 100 * time.Millisecond, refuse: true}},
			samples: 19, refused: 1},
		{name: "ring has two unhealthy", unhealthy: 2, status: 503, msg: "at least 2 live replicas required"},
		// A replica that refuses what the others store (it missed an
		// earlier write, or got two writes in another order) does not
		// count towards the quorum, and its refusal is not the answer.
		{name: "one refuses what two store", replicas: [3]replica{{refuse: true}}, samples: 20},
		{name: "one stores what two refuse", replicas: [3]replica{{}, {refuse: true}, {refuse: true}}, samples: 19, refused: 1},
		{name: "one stores, one refuses, one down", replicas: [3]replica{{}, {refuse: true}, {err: errDown}}, status: 503, msg: "connection refused"},
	}
	for i := range cases {
		c := &cases[i]
		t.Run(c.name, func(t *testing.T) {
			r := testRing(t, 3-c.unhealthy, c.unhealthy)
			byAddr := map[string]*replica{}
			for k := range 3 {
				byAddr[fmt.Sprintf("ing-%d:9095", k)] = &c.replicas[k]
			}
			p := NewReplicatingPusher(ReplicationConfig{RemoteTimeout: 5 * time.Second}, r, func(addr string) (IngesterClient, error) {
				return byAddr[addr], nil
			}, nil, nil)
			res, err := p.Push(tenantauth.With(t.Context(), "test", "team-a"), "team-a", testRequest(10))
			if c.status != 0 {
				if err == nil || statusOf(err) != c.status || !strings.Contains(err.Error(), c.msg) {
					t.Fatalf("error %v (status %d), want status %d with %q", err, statusOf(err), c.status, c.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Samples != c.samples || res.RejectedSamples != c.refused {
				t.Fatalf("stored %d and refused %d samples, want %d and %d (one copy of each series)", res.Samples, res.RejectedSamples, c.samples, c.refused)
			}
			if c.refused > 0 && !strings.Contains(res.Message(10), "out-of-order sample") {
				t.Fatalf("refusal reasons missing: %s", res.Message(10))
			}
		})
	}
}

// TestSlowReplicaDoesNotDelayTheAnswer checks that a push answers once a
// quorum stored it, and that the third replica's write goes on after the
// answer instead of being cancelled with the request (cortex#730).
func TestSlowReplicaDoesNotDelayTheAnswer(t *testing.T) {
	r := testRing(t, 3, 0)
	slow := &replica{delay: 2 * time.Second}
	reps := map[string]*replica{"ing-0:9095": {}, "ing-1:9095": {}, "ing-2:9095": slow}
	p := NewReplicatingPusher(ReplicationConfig{RemoteTimeout: 10 * time.Second}, r, func(addr string) (IngesterClient, error) { return reps[addr], nil }, nil, nil)
	ctx, cancel := context.WithCancel(tenantauth.With(context.Background(), "test", "team-a"))
	start := time.Now()
	if _, err := p.Push(ctx, "team-a", testRequest(10)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= slow.delay {
		t.Fatalf("the push took %s: it waited for the slow replica", took)
	}
	cancel() // the sender's request ends
	waited := make(chan struct{})
	go func() { p.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return: the slow replica's write never ended")
	}
	if slow.calls.Load() != 1 || slow.over.Load() != 1 {
		t.Fatalf("Wait returned with %d calls to the slow replica begun and %d over, want 1 and 1", slow.calls.Load(), slow.over.Load())
	}
	if slow.late.Load() != 0 {
		t.Fatal("the slow replica's write was cancelled with the sender's request")
	}
}

// TestBacklogSlowsTheSenders: past -distributor.max-ingester-write-backlog
// writes under way to one ingester, a push waits for its own write to that
// ingester even once its quorum stored it.
func TestBacklogSlowsTheSenders(t *testing.T) {
	r := testRing(t, 3, 0)
	slow := &replica{delay: 2 * time.Second}
	reps := map[string]*replica{"ing-0:9095": {}, "ing-1:9095": {}, "ing-2:9095": slow}
	p := NewReplicatingPusher(ReplicationConfig{RemoteTimeout: 30 * time.Second, MaxBacklog: 1}, r, func(addr string) (IngesterClient, error) { return reps[addr], nil }, nil, nil)
	p.stalled = time.Minute // slow, not stalled
	ctx := tenantauth.With(context.Background(), "test", "team-a")
	start := time.Now()
	if _, err := p.Push(ctx, "team-a", testRequest(10)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= slow.delay {
		t.Fatalf("the first push took %s: within the backlog, it waited for the slow replica", took)
	}
	second := time.Now()
	if _, err := p.Push(ctx, "team-a", testRequest(10)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(second); took < slow.delay {
		t.Fatalf("the second push took %s: with two writes under way to the slow replica and a backlog of one, it should have waited for its own (%s)", took, slow.delay)
	}
	if n := testutil.ToFloat64(p.waited); n != 1 {
		t.Fatalf("fluxpulse_distributor_backlog_waits_total is %v, want 1", n)
	}
	p.Wait()
}

// TestBacklogOfAStalledIngester: pushes stop waiting for an ingester that
// finished no write for a while; a hung replica must not hold every push
// for the whole remote timeout.
func TestBacklogOfAStalledIngester(t *testing.T) {
	r := testRing(t, 3, 0)
	hung := &replica{delay: 4 * time.Second}
	reps := map[string]*replica{"ing-0:9095": {}, "ing-1:9095": {}, "ing-2:9095": hung}
	p := NewReplicatingPusher(ReplicationConfig{RemoteTimeout: 30 * time.Second, MaxBacklog: 1}, r, func(addr string) (IngesterClient, error) { return reps[addr], nil }, nil, nil)
	p.stalled = 200 * time.Millisecond
	ctx := tenantauth.With(context.Background(), "test", "team-a")
	start := time.Now()
	for range 5 {
		if _, err := p.Push(ctx, "team-a", testRequest(10)); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took >= hung.delay/2 {
		t.Fatalf("five pushes took %s: they waited for the hung replica", took)
	}
	if n := testutil.ToFloat64(p.waited); n < 1 {
		t.Fatalf("fluxpulse_distributor_backlog_waits_total is %v: no push waited even before the replica counted as stalled", n)
	}
	p.Wait()
}

func TestStatusOfQuorum(t *testing.T) {
	err := fmt.Errorf("%w: x", ErrQuorum)
	if statusOf(err) != http.StatusServiceUnavailable || !errors.Is(err, remotewrite.ErrUnavailable) {
		t.Fatalf("quorum error maps to %d", statusOf(err))
	}
}
