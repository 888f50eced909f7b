package audit

import (
	"path/filepath"
	"testing"
)

// BenchmarkLog measures one append: encoding, hashing, flock, write and
// anchor update, without fsync (the default) and with it.
func BenchmarkLog(b *testing.B) {
	details := map[string]any{"query": `sum by (job) (rate(http_requests_total[5m]))`, "series": 120, "samples": 48000}
	for _, bc := range []struct {
		name    string
		details map[string]any
		opts    Options
	}{
		{"plain", nil, Options{}},
		{"details", details, Options{}},
		{"details-sealed", details, Options{Keys: staticKeys{}}},
		{"details-sync", details, Options{Sync: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := OpenWithOptions(filepath.Join(b.TempDir(), "audit.log"), bc.opts, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			e := Entry{Actor: "tok-1", Tenant: "team-a", Action: ActionQuery, Target: "/api/v1/query",
				Outcome: OutcomeSuccess, Details: bc.details}
			b.ReportAllocs()
			for b.Loop() {
				l.Log(e)
			}
		})
	}
}

// staticKeys is one fixed sealing key.
type staticKeys struct{}

func (staticKeys) Current() (string, []byte, error) { return "k1", make([]byte, 32), nil }
func (staticKeys) Key(string) ([]byte, error)       { return make([]byte, 32), nil }

// BenchmarkRecordPush measures the per-push cost of push summaries.
func BenchmarkRecordPush(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.log"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.RecordPush("team-a", "tok-1", PushStats{Samples: 1000, Bytes: 20000, StatusCode: 204})
		}
	})
}
