package rpc

import (
	"context"
	"errors"
	"flag"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// credential writes a secret to a file and loads it.
func credential(t testing.TB, secret string) Credential {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCredential(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newIngester starts a real ingester with the flags' defaults.
func newIngester(t testing.TB) *ingester.Ingester {
	t.Helper()
	var cfg ingester.Config
	var lim limits.Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	cfg.Dir = t.TempDir()
	ing, err := ingester.New(cfg, limits.NewOverrides(lim), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = ing.Close()
	})
	return ing
}

// serve starts a real ingester behind the ingester service on loopback
// and returns its address.
func serve(t testing.TB, cred Credential) string {
	t.Helper()
	ing := newIngester(t)
	srv := grpc.NewServer(cred.ServerOptions()...)
	RegisterIngester(srv, ing, ServiceOptions{Ready: ing.Ready})
	grpc_health_v1.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func dial(t testing.TB, addr string, cred Credential) *IngesterClient {
	t.Helper()
	c, err := DialIngester(addr, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eventually retries f until the ingester is ready or the deadline passes.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCallsNeedTheCredential checks that a call without the cluster's
// secret, or with another one, is refused before any handler runs, health
// checks included, and that a call with it but naming no tenant is
// refused too.
func TestCallsNeedTheCredential(t *testing.T) {
	cred := credential(t, "0123456789abcdef0123")
	addr := serve(t, cred)
	ctx := tenantauth.With(t.Context(), "test", "team-a")

	wrong := dial(t, addr, credential(t, "another-secret-of-20b"))
	if _, err := wrong.Push(ctx, nil); !isCode(err, codes.Unauthenticated) {
		t.Fatalf("push with another secret: %v, want Unauthenticated", err)
	}
	if _, err := wrong.Check(ctx, &grpc_health_v1.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("health check with another secret: %v, want Unauthenticated", err)
	}
	// A bare connection: no secret at all, then the secret but no tenant.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Invoke(t.Context(), methodLabels, &LabelsRequest{}, &LabelsResponse{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("call without credential: %v, want Unauthenticated", err)
	}
	withSecret := grpcmd.AppendToOutgoingContext(t.Context(), mdAuthorization, cred.header)
	err = conn.Invoke(withSecret, methodLabels, &LabelsRequest{}, &LabelsResponse{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("call naming no tenant: %v, want InvalidArgument", err)
	}
	bad := grpcmd.AppendToOutgoingContext(withSecret, mdTenant, "../etc")
	if err := conn.Invoke(bad, methodLabels, &LabelsRequest{}, &LabelsResponse{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("call naming an invalid tenant: %v, want InvalidArgument", err)
	}
	// The client refuses to send a tenant's call without a tenant.
	if _, err := dial(t, addr, cred).Push(t.Context(), nil); err == nil {
		t.Fatal("the client sent a call without a tenant")
	}
	if _, err := dial(t, addr, cred).Check(t.Context(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check with the credential: %v", err)
	}
}

func isCode(err error, c codes.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// TestPushAndRead pushes through the service and reads everything back,
// for the tenant of the context only.
func TestPushAndRead(t *testing.T) {
	cred := credential(t, "0123456789abcdef0123")
	c := dial(t, serve(t, cred), cred)
	a := tenantauth.With(t.Context(), "test", "team-a")
	b := tenantauth.With(t.Context(), "test", "team-b")
	now := time.Now().UnixMilli()
	series := []remotewrite.Series{
		{Labels: []labels.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "node"}},
			Samples:   []remotewrite.Sample{{Timestamp: now - 1000, Value: 1}, {Timestamp: now, Value: 0}},
			Exemplars: []remotewrite.Exemplar{{Labels: []labels.Label{{Name: "trace_id", Value: "t1"}}, Value: 1, Timestamp: now}}},
		{Labels: []labels.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "db"}},
			Samples:  []remotewrite.Sample{{Timestamp: now, Value: 1}},
			Metadata: remotewrite.Metadata{Type: model.MetricTypeGauge, Help: "Up."}},
	}
	var enc remotewrite.Encoder
	var body []byte
	for k := range series {
		body = enc.AppendSeries(body, &series[k])
	}
	var res remotewrite.Result
	eventually(t, func() error {
		var err error
		res, err = c.Push(a, body)
		return err
	})
	if res.Samples != 3 || res.Exemplars != 1 || res.Rejected() || len(res.SeriesOutcomes()) != 0 {
		t.Fatalf("push result %+v, want 3 samples and 1 exemplar stored, every series whole", res)
	}
	// Again, with one sample too old for the second series: its outcome
	// says so, and the first one is stored whole.
	series[0].Samples, series[0].Exemplars = []remotewrite.Sample{{Timestamp: now + 1000, Value: 1}}, nil
	series[1].Samples = []remotewrite.Sample{{Timestamp: now + 1000, Value: 1}, {Timestamp: now - 5000, Value: 1}}
	body = enc.AppendSeries(enc.AppendSeries(nil, &series[0]), &series[1])
	res, err := c.Push(a, body)
	if err != nil || res.Samples != 2 || res.RejectedSamples != 1 {
		t.Fatalf("second push: %+v %v, want 2 samples stored and 1 refused", res, err)
	}
	if o := res.SeriesOutcomes(); len(o) != 1 || o[0].Index != 1 || o[0].Samples != 1 || o[0].RejectedSamples != 1 {
		t.Fatalf("series outcomes %+v, want series 1 with one sample stored and one refused", o)
	}

	set := c.Select(a, math.MinInt64, math.MaxInt64, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().String())
	}
	if err := set.Err(); err != nil || !slices.Equal(got, []string{`{__name__="up", job="db"}`, `{__name__="up", job="node"}`}) {
		t.Fatalf("select: %v %v", got, err)
	}
	if vals, err := c.LabelValues(a, "job", math.MinInt64, math.MaxInt64, 0); err != nil || !slices.Equal(vals, []string{"db", "node"}) {
		t.Fatalf("label values: %v %v", vals, err)
	}
	if names, err := c.LabelNames(a, math.MinInt64, math.MaxInt64, 0); err != nil || !slices.Equal(names, []string{"__name__", "job"}) {
		t.Fatalf("label names: %v %v", names, err)
	}
	md := map[string][]metadata.Metadata{}
	if err := c.Metadata(a, "", -1, -1, md); err != nil || len(md["up"]) != 1 || md["up"][0].Help != "Up." {
		t.Fatalf("metadata: %v %v", md, err)
	}
	var ex []exemplar.QueryResult
	ex, err = c.Exemplars(a, math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "node")})
	if err != nil || len(ex) != 1 || len(ex[0].Exemplars) != 1 {
		t.Fatalf("exemplars: %v %v", ex, err)
	}
	// Another tenant sees none of it.
	if vals, err := c.LabelValues(b, "job", math.MinInt64, math.MaxInt64, 0); err != nil || len(vals) != 0 {
		t.Fatalf("team-b sees label values %v (%v)", vals, err)
	}
	checkApplyDeletion(t, a, c)
	if err := c.DeleteTenant(a); err != nil {
		t.Fatal(err)
	}
	if vals, err := c.LabelValues(a, "job", math.MinInt64, math.MaxInt64, 0); err != nil || len(vals) != 0 {
		t.Fatalf("after deletion: %v %v", vals, err)
	}
}

// checkApplyDeletion: a due deletion request tombstones the ingester's
// data (#14).
func checkApplyDeletion(t *testing.T, ctx context.Context, c *IngesterClient) {
	t.Helper()
	del := deletion.Request{ID: "01HZZZZZZZZZZZZZZZZZZZZZZZ", Selectors: []string{`up{job="db"}`}, Start: math.MinInt64 / 2, End: math.MaxInt64 / 2}
	if err := c.ApplyDeletion(ctx, del); err != nil {
		t.Fatal(err)
	}
	// The head lists a series whose samples are all deleted, without
	// chunks; the service leaves it out (a series without chunks made
	// Prometheus's chunk-to-sample conversion return nil, and panic).
	ss := storage.NewSeriesSetFromChunkSeriesSet(c.Select(ctx, math.MinInt64, math.MaxInt64, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
	left := map[string]int{}
	for ss.Next() {
		for it := ss.At().Iterator(nil); it.Next() != chunkenc.ValNone; {
			left[ss.At().Labels().Get("job")]++
		}
	}
	if err := ss.Err(); err != nil || left["db"] != 0 || left["node"] != 3 {
		t.Fatalf("samples after the deletion: %v %v", left, err)
	}
	bad := del
	bad.Selectors = []string{"up{"}
	if err := c.ApplyDeletion(ctx, bad); !errors.Is(err, remotewrite.ErrInvalid) {
		t.Fatalf("a deletion request that does not parse: %v", err)
	}
}
