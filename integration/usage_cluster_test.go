package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// seriesBody is a remote-write body with one sample for each of n series
// at ts.
func seriesBody(t *testing.T, n int, ts time.Time) []byte {
	t.Helper()
	var req prompb.WriteRequest
	for k := range n {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "usage_test"}, {Name: "series", Value: fmt.Sprint(k)}},
			Samples: []prompb.Sample{{Value: float64(k), Timestamp: ts.UnixMilli()}},
		})
	}
	b, err := proto.Marshal(&req)
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// usageTotals sums a usage report's rows of one tenant.
func usageTotals(t *testing.T, b []byte) (samples, active int64) {
	t.Helper()
	var rows []struct {
		SamplesReceived int64 `json:"samples_received"`
		ActiveSeries    int64 `json:"active_series"`
	}
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("usage report %q: %v", b, err)
	}
	for _, r := range rows {
		samples += r.SamplesReceived
		active = max(active, r.ActiveSeries)
	}
	return samples, active
}

// TestClusterUsageCountsEachSampleOnce pushes a known number of samples
// through two distributors to three ingesters at RF 3 (#17): every process
// ships its usage to the bucket, and the merged report, from the querier's
// /api/v1/admin/usage and from `fluxpulse usage report -bucket`, counts
// exactly the samples pushed (counted at the distributor, not at the three
// ingesters that store each) and the series once (not once per replica).
func TestClusterUsageCountsEachSampleOnce(t *testing.T) {
	const series, rounds = 50, 20
	c := startCluster(t, options{ingesters: 3, distributors: 2, queriers: 1, args: []string{"-usage.checkpoint-period=1s"}})
	start := time.Now().Add(-time.Minute)
	for r := range rounds {
		body := seriesBody(t, series, start.Add(time.Duration(r)*time.Second))
		if s, b := post(t, c.distributors[r%2].url(), "acme", "application/x-protobuf", body); s != http.StatusNoContent {
			t.Fatalf("push %d: %d %s", r, s, b)
		}
	}
	const want = series * rounds
	deadline := time.Now().Add(30 * time.Second)
	var got int64
	for {
		s, b := api(t, c.queriers[0].url(), "/api/v1/admin/usage", nil, "acme")
		if s != 200 {
			t.Fatalf("usage: %d %s", s, b)
		}
		got, _ = usageTotals(t, b)
		if got > want {
			t.Fatalf("the querier's report counts %d samples, %d were pushed", got, want)
		}
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the querier's report counts %d samples after 30s, %d were pushed", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A clean stop writes every process's last figures and gauges.
	for _, n := range c.nodes {
		c.stop(n)
	}
	out := c.cli("usage", "report", "-bucket", "-tenant", "acme", "-from", fmt.Sprint(start.Add(-2*time.Hour).Unix()),
		"-blocks-storage.filesystem.dir="+filepath.Join(c.shared, "bucket"), "-encryption.key-file="+filepath.Join(c.shared, "master-keys.json"))
	samples, active := usageTotals(t, []byte(out))
	if samples != want || active != series {
		t.Fatalf("usage report -bucket: %d samples and %d active series, want %d and %d:\n%s", samples, active, want, series, out)
	}
	t.Logf("%d samples pushed at RF 3: %d counted, %d active series (of %d)", want, samples, active, series)
}
