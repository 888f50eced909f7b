package ingester

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

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
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
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
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ing)
	return int64(after.HeapInuse) - int64(before.HeapInuse)
}
