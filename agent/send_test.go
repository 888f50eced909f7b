package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// receiver is a remote-write endpoint that records what reaches it: the
// credentials of each request and the timestamps of the heartbeat.
type receiver struct {
	mu        sync.Mutex
	down      bool // answer 503
	auth      []string
	tenants   []string
	types     []string
	heartbeat map[int64]bool
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
		return
	}
	ct := req.Header.Get("Content-Type")
	r.auth, r.tenants, r.types = append(r.auth, req.Header.Get("Authorization")), append(r.tenants, req.Header.Get("X-Scope-OrgID")), append(r.types, ct)
	var series []labels.Labels
	var times [][]int64
	if strings.Contains(ct, "io.prometheus.write.v2.Request") {
		wr, err := remote.DecodeWriteV2Request(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b := labels.NewScratchBuilder(8)
		for _, ts := range wr.Timeseries {
			ls, _ := ts.ToLabels(&b, wr.Symbols)
			series, times = append(series, ls), append(times, nil)
			for _, s := range ts.Samples {
				times[len(times)-1] = append(times[len(times)-1], s.Timestamp)
			}
		}
	} else {
		wr, err := remote.DecodeWriteRequest(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, ts := range wr.Timeseries {
			series, times = append(series, ts.ToLabels(&labels.ScratchBuilder{}, nil)), append(times, nil)
			for _, s := range ts.Samples {
				times[len(times)-1] = append(times[len(times)-1], s.Timestamp)
			}
		}
	}
	for i, ls := range series {
		if ls.Get(labels.MetricName) == HeartbeatMetric {
			for _, t := range times[i] {
				r.heartbeat[t] = true
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// heartbeats returns the distinct heartbeat timestamps received, sorted.
func (r *receiver) heartbeats() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ts []int64
	for t := range r.heartbeat {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

func (r *receiver) last() (auth, tenant, contentType string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.auth) == 0 {
		return "", "", ""
	}
	return r.auth[len(r.auth)-1], r.tenants[len(r.tenants)-1], r.types[len(r.types)-1]
}

func newReceiver(t *testing.T) (*receiver, string) {
	r := &receiver{heartbeat: map[int64]bool{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL + "/api/v1/push"
}

// running is an agent whose Run goroutine the test controls.
type running struct {
	a    *Agent
	stop func() error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	a, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	r := &running{a: a, stop: sync.OnceValue(func() error { cancel(); return <-done })}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func (r *running) collections() int { return int(testutil.ToFloat64(r.a.m.collections)) }

// TestSend sends to a receiver with each protocol and checks the
// credentials: the token file is read again when it changes.
func TestSend(t *testing.T) {
	for _, tc := range []struct{ protocol, contentType string }{
		{"1.0", "application/x-protobuf"},
		{"2.0", "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			recv, url := newReceiver(t)
			token := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(token, []byte("first-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			start(t, testConfig(t, "-remote-write.url="+url, "-remote-write.protocol="+tc.protocol,
				"-remote-write.token-file="+token, "-remote-write.tenant=team-a", "-scrape.interval=1s"))
			testbin.Eventually(t, 30*time.Second, func() error {
				if n := len(recv.heartbeats()); n < 2 {
					return fmt.Errorf("%d heartbeats received, want 2", n)
				}
				return nil
			})
			auth, tenant, ct := recv.last()
			if auth != "Bearer first-token" || tenant != "team-a" || ct != tc.contentType {
				t.Errorf("got Authorization %q, X-Scope-OrgID %q, Content-Type %q; want %q, %q, %q",
					auth, tenant, ct, "Bearer first-token", "team-a", tc.contentType)
			}
			if err := os.WriteFile(token, []byte("second-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			testbin.Eventually(t, 30*time.Second, func() error {
				if auth, _, _ := recv.last(); auth != "Bearer second-token" {
					return fmt.Errorf("Authorization is %q after the token file changed", auth)
				}
				return nil
			})
		})
	}
}

// TestBacklogAfterRestart stops and starts the agent while the receiver is
// down: once it is back, every collection of both runs has arrived.
// Prometheus' queue alone would send only what the second run collected.
func TestBacklogAfterRestart(t *testing.T) {
	recv, url := newReceiver(t)
	recv.setDown(true)
	cfg := testConfig(t, "-remote-write.url="+url, "-scrape.interval=1s", "-remote-write.max-backoff=200ms")
	waitCollections := func(r *running, n int) {
		t.Helper()
		testbin.Eventually(t, 30*time.Second, func() error {
			if got := r.collections(); got < n {
				return fmt.Errorf("%d collections, want %d", got, n)
			}
			return nil
		})
	}
	first := start(t, cfg)
	waitCollections(first, 3)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	second := start(t, cfg)
	waitCollections(second, 2)
	recv.setDown(false)
	want := first.collections()
	testbin.Eventually(t, 30*time.Second, func() error {
		want = first.collections() + second.collections()
		if got := len(recv.heartbeats()); got < want {
			return fmt.Errorf("%d heartbeats received, want %d (one a collection)", got, want)
		}
		return nil
	})
	if err := second.stop(); err != nil {
		t.Fatal(err)
	}
	got := recv.heartbeats()
	if len(got) != first.collections()+second.collections() {
		t.Errorf("got %d heartbeats, want one for each of %d+%d collections", len(got), first.collections(), second.collections())
	}
	if sent := testutil.ToFloat64(second.a.m.backlogSent); sent == 0 {
		t.Error("the backlog sender sent nothing")
	}
}
