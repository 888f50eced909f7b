package ingester

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// TestSeriesLimitShare checks that in a cluster a tenant's max_series is
// its limit across every ingester: with each series on 3 of 6 ingesters,
// one ingester holds half of the limit, and the refusal says so.
func TestSeriesLimitShare(t *testing.T) {
	for _, c := range []struct {
		name    string
		share   SeriesShare
		want    int
		message string
	}{
		{"one process", nil, 10, "the limit is 10"},
		{"3 of 6 ingesters", func(string) (int, int) { return 3, 6 }, 5, "its share of 5 (each series is on 3 of the 6 ingesters)"},
		{"3 of 3 ingesters", func(string) (int, int) { return 3, 3 }, 10, "share of 10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ing := testIngester(t, t.TempDir(), func(_ *Config, l *limits.Limits) { l.MaxSeries = 10 })
			ing.SetSeriesShare(c.share)
			req := &remotewrite.Request{Version: remotewrite.V1}
			for k := range 12 {
				req.Series = append(req.Series, remotewrite.Series{
					Labels:  []labels.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: fmt.Sprint("host-", k)}},
					Samples: []remotewrite.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}},
				})
			}
			res, err := ing.Push(t.Context(), "team-a", req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Samples != c.want || !strings.Contains(res.Message(12), c.message) {
				t.Fatalf("stored %d series, want %d; message %q should contain %q", res.Samples, c.want, res.Message(12), c.message)
			}
		})
	}
}
