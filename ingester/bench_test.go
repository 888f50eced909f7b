package ingester

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// BenchmarkTenantOverhead measures the heap an ingester holds for the same
// number of series kept by one tenant and by many small tenants, after three
// rounds of samples. The difference per tenant is what a tenant's own TSDB
// costs beyond its series: see "Known gaps" in docs/performance.md.
func BenchmarkTenantOverhead(b *testing.B) {
	const tenants, perTenant = 200, 100
	for b.Loop() {
		one := heapFor(b, 1, tenants*perTenant)
		many := heapFor(b, tenants, perTenant)
		b.ReportMetric(float64(one)/(tenants*perTenant), "heap-B/series-1-tenant")
		b.ReportMetric(float64(many)/(tenants*perTenant), "heap-B/series-200-tenants")
		b.ReportMetric(float64(many-one)/tenants, "heap-B/extra-tenant")
	}
}

// heapFor returns the heap in use after pushing three samples to each of
// perTenant series of each of n tenants of a new ingester.
func heapFor(b *testing.B, n, perTenant int) int64 {
	before := heapInUse(1)
	ing := testIngester(b, b.TempDir(), nil)
	now := time.Now().UnixMilli()
	for r := range 3 {
		for ti := range n {
			req := &remotewrite.Request{Version: remotewrite.V1}
			for s := range perTenant {
				req.Series = append(req.Series, remotewrite.Series{
					Labels: []labels.Label{
						{Name: "__name__", Value: "node_cpu_seconds_total"},
						{Name: "cpu", Value: fmt.Sprint(s % 16)},
						{Name: "instance", Value: fmt.Sprintf("t%d-host-%d", ti, s/128)},
						{Name: "mode", Value: fmt.Sprint(s / 16 % 8)},
					},
					Samples: []remotewrite.Sample{{Timestamp: now + int64(r)*15000, Value: float64(r)}},
					Key:     remotewrite.SeriesKey{H1: uint64(s + 1), H2: uint32(ti + 1)},
				})
			}
			if _, err := ing.Push(b.Context(), fmt.Sprintf("t%d", ti), req); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Two collections empty the head's sync.Pools of append buffers too
	// (120 KiB or more a tenant while it is pushing): what remains is what a
	// tenant costs at rest.
	after := heapInUse(2)
	runtime.KeepAlive(ing)
	return after - before
}

// heapInUse returns the heap in use after gcs garbage collections.
func heapInUse(gcs int) int64 {
	var m runtime.MemStats
	for range gcs {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// BenchmarkTenantFloor measures what a bare Prometheus TSDB opened with a
// tenant's options costs, with nothing of FluxPulse's around it: empty, and
// holding one series. It is the floor under BenchmarkTenantOverhead's
// per-tenant figure that no change in FluxPulse can go below while each
// tenant has a TSDB of its own. "smallest" is the least any option allows:
// one lock stripe, no WAL compression; "no-WAL" drops the WAL as well, which
// no tenant can do without (it keeps acknowledged samples over a crash) but
// shows what the head alone holds.
func BenchmarkTenantFloor(b *testing.B) {
	cfg, lim := defaults()
	smallest := cfg
	smallest.StripeSize = 1
	smallest.WALCompression = false
	b.Run("options=fluxpulse", func(b *testing.B) { tsdbFloor(b, cfg, lim, false) })
	b.Run("options=smallest", func(b *testing.B) { tsdbFloor(b, smallest, lim, false) })
	b.Run("options=smallest-no-WAL", func(b *testing.B) { tsdbFloor(b, smallest, lim, true) })
}

func tsdbFloor(b *testing.B, cfg Config, lim limits.Limits, noWAL bool) {
	const n = 100
	for b.Loop() {
		dir := b.TempDir()
		start := heapInUse(2)
		dbs := make([]*tsdb.DB, n)
		for i := range dbs {
			o := tsdbOptions(cfg, lim)
			if noWAL {
				o.WALSegmentSize = -1
			}
			db, err := tsdb.Open(filepath.Join(dir, fmt.Sprint(i)), nil, nil, o, nil)
			if err != nil {
				b.Fatal(err)
			}
			dbs[i] = db
		}
		empty := heapInUse(2)
		now := time.Now().UnixMilli()
		for i, db := range dbs {
			app := db.Appender(b.Context())
			if _, err := app.Append(0, labels.FromStrings("__name__", "up", "instance", fmt.Sprint(i)), now, 1); err != nil {
				b.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		// After one collection the head's sync.Pools of append buffers
		// survive in their victim caches, as they do for a tenant that
		// appends every few seconds; after two they are gone.
		appending := heapInUse(1)
		rest := heapInUse(2)
		b.ReportMetric(float64(empty-start)/n, "heap-B/empty-TSDB")
		b.ReportMetric(float64(rest-start)/n, "heap-B/TSDB-1-series-at-rest")
		b.ReportMetric(float64(appending-start)/n, "heap-B/TSDB-1-series-appending")
		for _, db := range dbs {
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
