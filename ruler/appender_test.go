package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/logthrottle"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// pushRecorder records what it is pushed, as strings, and answers with a
// fixed result or error.
type pushRecorder struct {
	calls  int
	tenant string
	got    []string
	res    func(n int) remotewrite.Result
	err    error
}

func (p *pushRecorder) Push(_ context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error) {
	p.calls++
	p.tenant = tenant
	for _, s := range req.Series {
		ls := labels.New(s.Labels...).String()
		for _, smp := range s.Samples {
			p.got = append(p.got, fmt.Sprintf("%s %d %v", ls, smp.Timestamp, smp.Value))
		}
		for _, h := range s.Histograms {
			p.got = append(p.got, fmt.Sprintf("%s %d hist count=%v", ls, h.Timestamp, h.FH.Count))
		}
	}
	if p.err != nil {
		return remotewrite.Result{}, p.err
	}
	if p.res != nil {
		return p.res(len(req.Series)), nil
	}
	return remotewrite.Result{Samples: len(req.Series)}, nil
}

func refuse(n int) func(int) remotewrite.Result {
	return func(total int) remotewrite.Result {
		var r remotewrite.Result
		r.Samples = total - n
		r.Reject(0, n, "out of order sample")
		return r
	}
}

func TestAppender(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	fh := &histogram.FloatHistogram{Count: 3, Sum: 1.5, Schema: 0}
	appendX := func(a storage.AppenderV2) {
		a.Append(0, labels.FromStrings("__name__", "x"), 0, 1, 1, nil, nil, storage.AOptions{})
	}
	appendXY := func(a storage.AppenderV2) {
		appendX(a)
		a.Append(0, labels.FromStrings("__name__", "y"), 0, 1, stale, nil, nil, storage.AOptions{})
	}
	for _, tc := range []struct {
		name      string
		append    func(a storage.AppenderV2)
		rollback  bool
		pusher    *pushRecorder
		wantCalls int
		want      []string
		wantErr   error
		refused   float64
		failures  float64
	}{
		{name: "floats, histogram and a staleness marker in one request",
			append: func(a storage.AppenderV2) {
				a.Append(0, labels.FromStrings("__name__", "job:up:sum", "job", "a"), 0, 1000, 2, nil, nil, storage.AOptions{})
				a.Append(0, labels.FromStrings("__name__", "ALERTS", "alertname", "Down", "alertstate", "firing"), 0, 1000, 1, nil, nil, storage.AOptions{})
				a.Append(0, labels.FromStrings("__name__", "h"), 0, 1000, 0, nil, fh, storage.AOptions{})
				a.Append(0, labels.FromStrings("__name__", "gone"), 0, 1000, stale, nil, nil, storage.AOptions{})
			},
			pusher: &pushRecorder{}, wantCalls: 1,
			want: []string{`{__name__="job:up:sum", job="a"} 1000 2`, `{__name__="ALERTS", alertname="Down", alertstate="firing"} 1000 1`,
				`{__name__="h"} 1000 hist count=3`, `{__name__="gone"} 1000 NaN`}},
		{name: "nothing appended pushes nothing", append: func(storage.AppenderV2) {}, pusher: &pushRecorder{}},
		{name: "rollback pushes nothing", rollback: true, pusher: &pushRecorder{},
			append: appendX},
		{name: "push error fails the commit", pusher: &pushRecorder{err: errInjected}, wantCalls: 1, wantErr: errInjected, failures: 1,
			want:   []string{`{__name__="x"} 1 1`},
			append: appendX},
		{name: "refused staleness markers only are not an error", pusher: &pushRecorder{res: refuse(1)}, wantCalls: 1, refused: 1,
			want:   []string{`{__name__="x"} 1 1`, `{__name__="y"} 1 NaN`},
			append: appendXY},
		{name: "refused samples fail the commit", pusher: &pushRecorder{res: refuse(2)}, wantCalls: 1, wantErr: ErrRefused, refused: 2,
			want:   []string{`{__name__="x"} 1 1`, `{__name__="y"} 1 NaN`},
			append: appendXY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newWriteMetrics(prometheus.NewRegistry())
			ap := &appendable{tenant: "team-a", pusher: tc.pusher, metrics: m, logs: logthrottle.New(time.Minute), logger: slog.New(slog.DiscardHandler)}
			a := ap.AppenderV2(t.Context())
			tc.append(a)
			var err error
			if tc.rollback {
				err = a.Rollback()
			} else {
				err = a.Commit()
			}
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("commit: %v, want %v", err, tc.wantErr)
			}
			if tc.pusher.calls != tc.wantCalls {
				t.Fatalf("%d pushes, want %d", tc.pusher.calls, tc.wantCalls)
			}
			if tc.wantCalls > 0 && tc.pusher.tenant != "team-a" {
				t.Errorf("pushed for tenant %q", tc.pusher.tenant)
			}
			if g, w := strings.Join(tc.pusher.got, "\n"), strings.Join(tc.want, "\n"); g != w {
				t.Errorf("pushed:\n%s\nwant:\n%s", g, w)
			}
			if g := testutil.ToFloat64(m.refused.WithLabelValues("team-a")); g != tc.refused {
				t.Errorf("refused samples counted %v, want %v", g, tc.refused)
			}
			if g := testutil.ToFloat64(m.failures.WithLabelValues("team-a")); g != tc.failures {
				t.Errorf("failures counted %v, want %v", g, tc.failures)
			}
			if err := a.Commit(); err == nil {
				t.Error("a second commit succeeded")
			}
		})
	}
}

// BenchmarkAppender measures the adapter alone: appending one rule's
// results and building the request (the push itself is a no-op), per
// sample.
func BenchmarkAppender(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			series := make([]labels.Labels, n)
			for k := range series {
				series[k] = labels.FromStrings("__name__", "job:http_requests:rate5m", "instance", fmt.Sprintf("host-%d:9100", k), "job", "node", "env", "prod")
			}
			ap := &appendable{tenant: "team-a", logs: logthrottle.New(time.Minute), logger: slog.New(slog.DiscardHandler),
				metrics: newWriteMetrics(nil), pusher: PusherFunc(func(_ context.Context, _ string, req *remotewrite.Request) (remotewrite.Result, error) {
					return remotewrite.Result{Samples: len(req.Series)}, nil
				})}
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				a := ap.AppenderV2(ctx)
				for k, ls := range series {
					a.Append(0, ls, 0, 1000, float64(k), nil, nil, storage.AOptions{})
				}
				if err := a.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
		})
	}
}

// BenchmarkAppenderToTSDB is the same with the results appended to a real
// TSDB, the cost the ingester adds in a single process.
func BenchmarkAppenderToTSDB(b *testing.B) {
	db, err := tsdb.Open(b.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 100
	series := make([]labels.Labels, n)
	for k := range series {
		series[k] = labels.FromStrings("__name__", "job:http_requests:rate5m", "instance", fmt.Sprintf("host-%d:9100", k), "job", "node", "env", "prod")
	}
	ap := &appendable{tenant: "team-a", pusher: &tsdbPusher{db: db}, metrics: newWriteMetrics(nil), logs: logthrottle.New(time.Minute), logger: slog.New(slog.DiscardHandler)}
	ctx := b.Context()
	b.ReportAllocs()
	ts := int64(0)
	for b.Loop() {
		ts += 1000
		a := ap.AppenderV2(ctx)
		for k, ls := range series {
			a.Append(0, ls, 0, ts, float64(k), nil, nil, storage.AOptions{})
		}
		if err := a.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
}
