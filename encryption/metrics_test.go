package encryption_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// readBytes sums fluxpulse_bucket_read_bytes_total over operations.
func readBytes(t testing.TB, reg *prometheus.Registry) int64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "fluxpulse_bucket_read_bytes_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int64(sum)
}
