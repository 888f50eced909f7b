package distributor

import (
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// A series must land where earlier distributors put it: the token is the
// hash of the tenant and the labels joined by 0xff, however it is computed.
func TestShardTokenIsStable(t *testing.T) {
	piecewise := func(tenant string, ls []labels.Label) uint32 {
		var d xxhash.Digest
		d.Reset()
		_, _ = d.WriteString(tenant)
		for _, l := range ls {
			_, _ = d.Write([]byte{0xff})
			_, _ = d.WriteString(l.Name)
			_, _ = d.Write([]byte{0xff})
			_, _ = d.WriteString(l.Value)
		}
		h := d.Sum64()
		return uint32(h ^ h>>32)
	}
	long := strings.Repeat("v", 2000) // past the stack buffer
	for _, c := range []struct {
		tenant string
		ls     []labels.Label
	}{
		{"t", nil},
		{"tenant-1", []labels.Label{{Name: "__name__", Value: "up"}}},
		{"tenant-1", []labels.Label{{Name: "__name__", Value: "node_cpu_seconds_total"}, {Name: "cpu", Value: "0"}, {Name: "instance", Value: "host-1:9100"}, {Name: "mode", Value: "idle"}}},
		{"tenant-2", []labels.Label{{Name: "__name__", Value: "up"}}},
		{"tenant-1", []labels.Label{{Name: "__name__", Value: long}, {Name: "a", Value: long}}},
	} {
		if got, want := shardToken(c.tenant, c.ls), piecewise(c.tenant, c.ls); got != want {
			t.Errorf("shardToken(%q, %d labels) = %d, want %d", c.tenant, len(c.ls), got, want)
		}
	}
}

func BenchmarkShardToken(b *testing.B) {
	ls := []labels.Label{{Name: "__name__", Value: "node_cpu_seconds_total"}, {Name: "cpu", Value: "0"}, {Name: "instance", Value: "host-1:9100"}, {Name: "job", Value: "node"}, {Name: "mode", Value: "idle"}}
	b.ReportAllocs()
	for b.Loop() {
		shardToken("tenant-1", ls)
	}
}
