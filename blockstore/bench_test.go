package blockstore_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
)

// tenantQueryable serves one tenant's store data to the PromQL engine.
type tenantQueryable struct {
	s      *blockstore.Store
	tenant string
}

func (q tenantQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return q.s.Querier(context.Background(), q.tenant, mint, maxt)
}

type ingesterQueryable struct{ ing *ingester.Ingester }

func (q ingesterQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return q.ing.Querier(context.Background(), "bench", mint, maxt)
}

// BenchmarkStoreQuery runs a dashboard-style range query (a rate summed
// over 200 series, 60 minutes at a 1-minute step) over the same data in an
// ingester's head, and over blocks in an encrypted filesystem bucket,
// compacted as the compactor leaves them: on the first query of a fresh
// store (index download included), with the chunk cache emptied before
// each query, and with a warm cache. It reports the bytes per sample the
// bucket holds after compaction.
func BenchmarkStoreQuery(b *testing.B) {
	bk := blockstoretest.NewBuckets(b)
	// Two-hour blocks, as in production: chunks of 120 samples.
	shipper, _ := blockstoretest.Ingest(b, bk.Enc, 2*time.Hour, "bench", 200, 60)
	if err := shipper.Flush("bench"); err != nil {
		b.Fatal(err)
	}
	shipper.Close()
	var ccfg compactor.Config
	var lim limits.Limits
	fs := flag.NewFlagSet("b", flag.ContinueOnError)
	ccfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	if err := fs.Parse([]string{"-compactor.block-ranges=2h,12h,24h", "-compactor.deletion-delay=0s"}); err != nil {
		b.Fatal(err)
	}
	ccfg.Dir = b.TempDir()
	c, err := compactor.New(ccfg, bk.Raw, bk.Enc, bk.Keys, limits.NewOverrides(lim), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for range 4 {
		c.RunOnce(context.Background())
	}
	infos, err := blockstore.Report(context.Background(), bk.Raw, bk.Enc, "bench")
	if err != nil {
		b.Fatal(err)
	}
	var samples uint64
	var stored int64
	for _, in := range infos {
		if !in.MarkedDeleted {
			samples += in.Samples
			stored += in.StoredBytes
		}
	}

	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	end := time.Now().Add(-time.Minute).Truncate(time.Minute)
	run := func(b *testing.B, s *blockstore.Store) {
		q, err := eng.NewRangeQuery(context.Background(), tenantQueryable{s, "bench"}, nil, `sum(rate(m[5m]))`, end.Add(-time.Hour), end, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		res := q.Exec(context.Background())
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		q.Close()
	}
	newStore := func(b *testing.B) *blockstore.Store {
		s, err := blockstore.New(blockstore.Config{Dir: b.TempDir(), SyncInterval: time.Hour, ChunkCacheSize: 64 << 20}, bk.Enc, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.Run("ingester", func(b *testing.B) {
		ing, _ := blockstoretest.Ingest(b, nil, 2*time.Hour, "bench", 200, 60)
		defer ing.Close()
		q, err := eng.NewRangeQuery(context.Background(), ingesterQueryable{ing}, nil, `sum(rate(m[5m]))`, end.Add(-time.Hour), end, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		q.Close()
		for b.Loop() {
			q, _ := eng.NewRangeQuery(context.Background(), ingesterQueryable{ing}, nil, `sum(rate(m[5m]))`, end.Add(-time.Hour), end, time.Minute)
			if res := q.Exec(context.Background()); res.Err != nil {
				b.Fatal(res.Err)
			}
			q.Close()
		}
	})
	b.Run("first-query", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s := newStore(b)
			b.StartTimer()
			run(b, s)
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
	})
	b.Run("cold-cache", func(b *testing.B) {
		s := newStore(b)
		defer s.Close()
		run(b, s) // indexes downloaded
		for b.Loop() {
			b.StopTimer()
			s.ResetCache()
			b.StartTimer()
			run(b, s)
		}
	})
	b.Run("warm-cache", func(b *testing.B) {
		s := newStore(b)
		defer s.Close()
		run(b, s)
		for b.Loop() {
			run(b, s)
		}
		b.ReportMetric(float64(stored)/float64(samples), "bucket-bytes/sample")
	})
}
