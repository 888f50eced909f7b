package ruler

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/audit/audittest"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// env is a ruler over a real TSDB (standing in for the querier and the
// distributor, for every tenant alike) and a filesystem bucket, served over
// HTTP in header mode.
type env struct {
	t      *testing.T
	db     *tsdb.DB
	bkt    bucket.Bucket
	lim    *limits.Overrides
	pusher *tsdbPusher
	audit  *audittest.Recorder
	reg    *prometheus.Registry
	r      *Ruler
	srv    *httptest.Server
	stop   func()
}

func defaultLimits(t testing.TB) limits.Limits {
	var l limits.Limits
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	l.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	l.RulerMinEvaluationInterval = 100 * time.Millisecond
	return l
}

func testConfig(t testing.TB) Config {
	var c Config
	fs := flag.NewFlagSet("ruler", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c.EvaluationInterval = time.Second
	return c
}

// newEnv starts a ruler; with a nil db and bkt it makes new ones. opts
// change the dependencies before the ruler is built.
func newEnv(t *testing.T, cfg Config, db *tsdb.DB, bkt bucket.Bucket, opts ...func(*Dependencies)) *env {
	t.Helper()
	e := buildEnv(t, cfg, db, bkt, opts...)
	e.start()
	return e
}

// buildEnv is newEnv without running the ruler: start runs it.
func buildEnv(t *testing.T, cfg Config, db *tsdb.DB, bkt bucket.Bucket, opts ...func(*Dependencies)) *env {
	t.Helper()
	if db == nil {
		var err error
		if db, err = tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	if bkt == nil {
		fs, err := bucket.NewFilesystem(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		bkt = fs
	}
	e := &env{t: t, db: db, bkt: bkt, lim: limits.NewOverrides(defaultLimits(t)), pusher: &tsdbPusher{db: db},
		audit: &audittest.Recorder{}, reg: prometheus.NewRegistry()}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	deps := Dependencies{Engine: eng, Queryable: db, Pusher: e.pusher, Bucket: bkt, Limits: e.lim, Audit: e.audit}
	for _, o := range opts {
		o(&deps)
	}
	r, err := New(cfg, deps, nil, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	auth, err := tenantauth.New(tenantauth.Config{Mode: "header"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	r.Register(mux, func(h http.Handler) http.Handler {
		return auth.Middleware(tenantauth.ScopeRules, tenantauth.PlainError, h)
	},
		func(h http.Handler) http.Handler {
			return auth.Middleware(tenantauth.ScopeRead, tenantauth.PlainError, h)
		})
	e.srv = httptest.NewServer(mux)
	return e
}

// start runs the ruler until the test ends or stop.
func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.r.Run(ctx)
	}()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			e.srv.Close()
		})
	}
	e.t.Cleanup(e.stop)
}

// do sends a request as tenant ("" for none) and returns status and body.
func (e *env) do(method, path, tenant, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if tenant != "" {
		req.Header.Set(tenantauth.OrgIDHeader, tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// post stores a group and requires 202.
func (e *env) post(tenant, namespace, body string) {
	e.t.Helper()
	if code, msg := e.do(http.MethodPost, "/api/v1/rules/"+namespace, tenant, body); code != http.StatusAccepted {
		e.t.Fatalf("POST rules/%s: %d %s", namespace, code, msg)
	}
}

// tsdbPusher appends pushed requests to a TSDB, refusing what the TSDB
// refuses; fail makes every push fail.
type tsdbPusher struct {
	db   *tsdb.DB
	fail atomic.Pointer[error]
}

func (p *tsdbPusher) Push(ctx context.Context, _ string, req *remotewrite.Request) (remotewrite.Result, error) {
	if err := p.fail.Load(); err != nil {
		return remotewrite.Result{}, *err
	}
	var res remotewrite.Result
	app := p.db.AppenderV2(ctx)
	for _, s := range req.Series {
		ls := labels.New(s.Labels...)
		for _, smp := range s.Samples {
			if _, err := app.Append(0, ls, 0, smp.Timestamp, smp.Value, nil, nil, storage.AOptions{}); err != nil {
				res.Reject(0, 1, err.Error())
				continue
			}
			res.Samples++
		}
		for _, h := range s.Histograms {
			if _, err := app.Append(0, ls, 0, h.Timestamp, 0, h.H, h.FH, storage.AOptions{}); err != nil {
				res.Reject(0, 1, err.Error())
				continue
			}
			res.Histograms++
		}
	}
	return res, app.Commit()
}

func (p *tsdbPusher) setFail(err error) {
	if err == nil {
		p.fail.Store(nil)
		return
	}
	p.fail.Store(&err)
}

var errInjected = errors.New("injected push failure")
