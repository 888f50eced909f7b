package querier

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

type rawQueryable struct{ ing *ingester.Ingester }

func (q rawQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return q.ing.Querier(context.Background(), "t", mint, maxt)
}

// BenchmarkQueryMerge runs a dashboard-style range query over 5,000 series
// of 240 samples in an ingester, straight against the tenant's TSDB and
// through FluxPulse's Queryable (tenant from the context, per-tenant limits
// and read counters, merge of sources): the difference is what FluxPulse's
// read path adds.
func BenchmarkQueryMerge(b *testing.B) {
	var lim limits.Limits
	var icfg ingester.Config
	fs := flag.NewFlagSet("b", flag.ContinueOnError)
	lim.RegisterFlags(fs)
	icfg.RegisterFlags(fs)
	icfg.Dir = b.TempDir()
	ov := limits.NewOverrides(lim)
	ing, err := ingester.New(icfg, ov, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ing.Close()
	now := time.Now().Truncate(time.Minute)
	req := &remotewrite.Request{}
	for s := range 5000 {
		ser := remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: "m"}, {Name: "instance", Value: fmt.Sprint(s % 100)}, {Name: "s", Value: fmt.Sprint(s)}}}
		for i := range 240 {
			ser.Samples = append(ser.Samples, remotewrite.Sample{Timestamp: now.Add(time.Duration(i-240) * 15 * time.Second).UnixMilli(), Value: float64(i * s)})
		}
		req.Series = append(req.Series, ser)
	}
	if _, err := ing.Push(context.Background(), "t", req); err != nil {
		b.Fatal(err)
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	ctx := tenantauth.With(context.Background(), "bench", "t")
	for _, tc := range []struct {
		name string
		q    storage.Queryable
	}{
		{"tsdb", rawQueryable{ing}},
		{"fluxpulse", NewQueryable(ov, 5*time.Minute, ing, ing)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				q, err := eng.NewRangeQuery(ctx, tc.q, nil, `sum by (instance) (rate(m[1m]))`, now.Add(-time.Hour), now, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if res := q.Exec(WithStats(ctx, NewStats([]string{"t"}))); res.Err != nil {
					b.Fatal(res.Err)
				}
				q.Close()
			}
		})
	}
}
