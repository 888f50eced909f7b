package audit

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestRecordPushAggregatesPerMinute(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	c := &clock{t: testStart.Add(5 * time.Second)}
	l, err := OpenWithOptions(path, Options{Now: c.Now}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.RecordPush("team-a", "tok-1", PushStats{Samples: 100, Histograms: 2, Exemplars: 1, Bytes: 1000, StatusCode: 204})
	l.RecordPush("team-b", "tok-2", PushStats{Samples: 7, Bytes: 70, StatusCode: 204})
	c.Set(testStart.Add(59 * time.Second))
	l.RecordPush("team-a", "tok-1", PushStats{Samples: 50, RejectedSamples: 3, Bytes: 600, StatusCode: 400})
	l.RecordPush("team-a", "tok-3", PushStats{Samples: 1, Bytes: 10, StatusCode: 204})
	if es := readOrNil(t, path); len(es) != 0 {
		t.Fatalf("summaries written before the minute ended: %+v", es)
	}

	// The first push of the next minute writes the previous minute.
	c.Set(testStart.Add(61 * time.Second))
	l.RecordPush("team-a", "tok-1", PushStats{Samples: 5, Bytes: 50, StatusCode: 204})
	es := readOrNil(t, path)
	want := []struct {
		tenant, actor, outcome string
		details                string
	}{
		{"team-a", "tok-1", OutcomeFailure, `{"bytes":1600,"exemplars":1,"histograms":2,"rejected_samples":3,"requests":2,"samples":150,"status":{"204":1,"400":1}}`},
		{"team-a", "tok-3", OutcomeSuccess, `{"bytes":10,"exemplars":0,"histograms":0,"rejected_samples":0,"requests":1,"samples":1,"status":{"204":1}}`},
		{"team-b", "tok-2", OutcomeSuccess, `{"bytes":70,"exemplars":0,"histograms":0,"rejected_samples":0,"requests":1,"samples":7,"status":{"204":1}}`},
	}
	if len(es) != len(want) {
		t.Fatalf("got %d summaries, want %d: %+v", len(es), len(want), es)
	}
	for i, w := range want {
		e := es[i]
		d, _ := json.Marshal(e.Details)
		if e.Action != ActionPushSummary || e.Tenant != w.tenant || e.Actor != w.actor || e.Outcome != w.outcome ||
			e.Target != "2026-05-01T10:00:00Z" || string(d) != w.details {
			t.Errorf("summary %d: %s %s %s %s %s %s, want %+v", i, e.Action, e.Tenant, e.Actor, e.Outcome, e.Target, d, w)
		}
	}

	// Close writes the minute in progress.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	es = readOrNil(t, path)
	if len(es) != 4 || es[3].Target != "2026-05-01T10:01:00Z" || es[3].Details["samples"] != json.Number("5") {
		t.Fatalf("after Close: %+v", es[len(es)-1])
	}
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
}

func TestRunFlushesEndedMinutes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	c := &clock{t: testStart}
	l, err := OpenWithOptions(path, Options{Now: c.Now}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.tick = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	l.RecordPush("team-a", "tok-1", PushStats{Samples: 1, StatusCode: 204})
	c.Set(testStart.Add(time.Minute))
	deadline := time.Now().Add(10 * time.Second)
	for len(readOrNil(t, path)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not write the ended minute's summary")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if es := readOrNil(t, path); len(es) != 1 {
		t.Fatalf("%d summaries, want 1", len(es))
	}
}

func readOrNil(t *testing.T, path string) []Entry {
	t.Helper()
	es, err := ReadEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
