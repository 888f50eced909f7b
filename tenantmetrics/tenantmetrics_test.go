package tenantmetrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTenantComesBack: a tenant's collectors carry its label, go away with
// UnregisterAll, and can be registered again by the same code.
func TestTenantComesBack(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		a, b := New(reg, "a"), New(reg, "b")
		for _, r := range []*Registry{a, b} {
			r.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"}))
		}
		if n := testutil.CollectAndCount(reg, "x_total"); n != 2 {
			t.Fatalf("%d series, want one per tenant", n)
		}
		a.UnregisterAll()
		b.UnregisterAll()
		if n := testutil.CollectAndCount(reg, "x_total"); n != 0 {
			t.Fatalf("%d series left", n)
		}
	}
	New(nil, "a").MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "y_total", Help: "y"}))
}
