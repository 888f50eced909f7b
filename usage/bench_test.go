package usage

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkAdd measures the hot path: one tenant from every goroutine
// (contended), and many tenants.
func BenchmarkAdd(b *testing.B) {
	for _, tenants := range []int{1, 1000} {
		b.Run("tenants="+strconv.Itoa(tenants), func(b *testing.B) {
			r, err := NewRecorder(b.TempDir(), nil, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			names := make([]string, tenants)
			for i := range names {
				names[i] = "tenant-" + strconv.Itoa(i)
				r.Add(names[i], Queries, 1)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1))
				for pb.Next() {
					r.Add(names[i%tenants], SamplesReceived, 100)
					i++
				}
			})
		})
	}
}
