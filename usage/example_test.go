package usage_test

import (
	"os"
	"time"

	"github.com/fluxpulse/fluxpulse/usage"
)

func Example() {
	dir, _ := os.MkdirTemp("", "usage-example")
	defer os.RemoveAll(dir)
	clock := func() time.Time { return time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC) }
	gauges := func() map[string]usage.Gauges {
		return map[string]usage.Gauges{"team-a": {ActiveSeries: 1500, StoredBytes: 1 << 20}}
	}
	r, err := usage.NewRecorderWithOptions(dir, gauges, usage.Options{Now: clock}, nil, nil)
	if err != nil {
		panic(err)
	}
	// On every push and query:
	r.Add("team-a", usage.SamplesReceived, 1000)
	r.Add("team-a", usage.BytesReceived, 12345)
	r.Add("team-a", usage.Queries, 1)
	// Run does this when it stops.
	if err := r.Flush(); err != nil {
		panic(err)
	}
	// What `fluxpulse usage report -format csv` prints for that day:
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	rows, err := usage.Report(dir, day, day.Add(24*time.Hour), nil)
	if err != nil {
		panic(err)
	}
	if err := usage.WriteCSV(os.Stdout, rows); err != nil {
		panic(err)
	}
	// Output:
	// hour,tenant,partial,samples_received,histograms_received,exemplars_received,bytes_received,samples_rejected,queries,samples_queried,series_queried,active_series,stored_bytes
	// 2026-05-01T10:00:00Z,team-a,true,1000,0,0,12345,0,1,0,0,1500,1048576
}
