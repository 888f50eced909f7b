package usage

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
)

// TestClusterReportMergesProcesses: a distributor counts the samples, three
// ingesters at RF 3 each report the tenant's 10 series; merged, the samples
// are counted once and the series once (#17).
func TestClusterReportMergesProcesses(t *testing.T) {
	dir := t.TempDir()
	raw, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	remote := encryption.NewSystemStore(raw, "usage", kf.Derive("test usage"))
	newRec := func(instance string, gauges GaugeFunc, rf int) *Recorder {
		r, err := NewRecorderWithOptions(filepath.Join(dir, instance), gauges, Options{Remote: remote, Instance: instance, ReplicationFactor: rf}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	dist := newRec("distributor-0", nil, 0)
	dist.Add("acme", SamplesReceived, 100)
	dist.Add("acme", BytesReceived, 7)
	for _, name := range []string{"ingester-0", "ingester-1", "ingester-2"} {
		ing := newRec(name, func() map[string]Gauges { return map[string]Gauges{"acme": {ActiveSeries: 10, StoredBytes: 4096}} }, 3)
		ing.Add("acme", SamplesReceived, 0) // ingesters count no samples: the distributor did
		if err := ing.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := dist.Flush(); err != nil {
		t.Fatal(err)
	}
	q := newRec("querier-0", nil, 0)
	q.Add("acme", Queries, 2)
	now := time.Now()
	for _, tc := range []struct {
		name string
		rows func() ([]Row, error)
	}{
		{"querier's cluster report", func() ([]Row, error) {
			return q.ClusterReport(t.Context(), now.Add(-time.Hour), now.Add(time.Hour), nil)
		}},
		{"bucket only", func() ([]Row, error) {
			_ = q.Flush()
			return ReportRemote(t.Context(), remote, now.Add(-time.Hour), now.Add(time.Hour), []string{"acme"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := tc.rows()
			if err != nil || len(rows) == 0 {
				t.Fatalf("rows %+v, %v", rows, err)
			}
			var u Usage // the processes may have written on both sides of an hour
			for _, row := range rows {
				for k := range numKinds {
					*u.Counter(k) += *row.Counter(k)
				}
				u.ActiveSeries, u.StoredBytes = max(u.ActiveSeries, row.ActiveSeries), max(u.StoredBytes, row.StoredBytes)
			}
			if u.SamplesReceived != 100 || u.BytesReceived != 7 || u.Queries != 2 || u.ActiveSeries != 10 || u.StoredBytes != 4096 {
				t.Fatalf("merged usage %+v, want 100 samples, 7 bytes, 2 queries, 10 series, 4096 stored bytes", u)
			}
		})
	}
}
