package usage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// h10 is 10:00 UTC on a day in the past, so no test hour is "now".
var h10 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func newTestRecorder(t *testing.T, dir string, c *clock, gauges GaugeFunc) *Recorder {
	t.Helper()
	r, err := NewRecorderWithOptions(dir, gauges, Options{Now: c.Now}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// byKey indexes rows by hour and tenant.
func byKey(rows []Row) map[string]Row {
	m := map[string]Row{}
	for _, r := range rows {
		m[r.Hour.Format("15")+"/"+r.Tenant] = r
	}
	return m
}

func TestAddIsExactUnderConcurrency(t *testing.T) {
	c := &clock{t: h10.Add(time.Minute)}
	r := newTestRecorder(t, t.TempDir(), c, nil)
	const goroutines, each = 8, 5000
	tenants := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				tenant := tenants[(g+i)%len(tenants)]
				r.Add(tenant, Kind(i%int(numKinds)), 2)
			}
		})
	}
	// Hours close and reports are read while the adds go on.
	wg.Go(func() {
		for i := range 50 {
			c.Set(h10.Add(time.Duration(i) * 3 * time.Minute))
			r.advance()
			if _, err := r.Report(h10, h10.Add(3*time.Hour), nil); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	rows, err := r.Report(h10, h10.Add(3*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	var sum totals
	for _, row := range rows {
		for k := range numKinds {
			sum[k] += *row.Counter(k)
		}
	}
	for k := range numKinds {
		if want := int64(goroutines * each / int(numKinds) * 2); sum[k] != want {
			t.Errorf("%s: %d over %d rows, want %d", k, sum[k], len(rows), want)
		}
	}
}

func TestHourRollover(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: h10.Add(15 * time.Minute)}
	series := int64(100)
	r := newTestRecorder(t, dir, c, func() map[string]Gauges {
		return map[string]Gauges{"a": {ActiveSeries: series, StoredBytes: 5000}, "idle": {StoredBytes: 7}}
	})
	r.Add("a", SamplesReceived, 10)
	r.Add("a", BytesReceived, 300)
	r.Add("b", Queries, 1)
	c.Set(h10.Add(59*time.Minute + 59*time.Second))
	r.advance() // checkpoint: the hour is written, still partial
	r.Add("a", SamplesReceived, 5)
	series = 120
	c.Set(h10.Add(time.Hour + time.Second))
	r.advance() // closes 10:00
	r.Add("a", SamplesReceived, 1)
	r.Add("b", SeriesQueried, 9)

	files, err := Report(dir, h10, h10.Add(2*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := byKey(files)
	if len(files) != 3 {
		t.Fatalf("files hold %d rows, want 3 (hour 10: a, b, idle): %+v", len(files), files)
	}
	if a := got["10/a"]; a.Partial || a.SamplesReceived != 15 || a.BytesReceived != 300 || a.ActiveSeries != 120 || a.StoredBytes != 5000 {
		t.Errorf("hour 10 of a from files: %+v", a)
	}
	if b := got["10/b"]; b.Queries != 1 || b.ActiveSeries != 0 {
		t.Errorf("hour 10 of b from files: %+v", b)
	}
	if idle := got["10/idle"]; idle.StoredBytes != 7 || idle.SamplesReceived != 0 {
		t.Errorf("hour 10 of idle from files: %+v", idle)
	}

	live, err := r.Report(h10, h10.Add(2*time.Hour), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	got = byKey(live)
	if len(live) != 4 {
		t.Fatalf("live report has %d rows, want 4: %+v", len(live), live)
	}
	if a := got["11/a"]; !a.Partial || a.SamplesReceived != 1 || a.ActiveSeries != 120 {
		t.Errorf("hour 11 of a, live: %+v", a)
	}
	if b := got["11/b"]; b.SeriesQueried != 9 || b.Queries != 0 {
		t.Errorf("hour 11 of b, live: %+v", b)
	}
}

func TestRestartKeepsFigures(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: h10.Add(10 * time.Minute)}
	r1 := newTestRecorder(t, dir, c, nil)
	r1.Add("a", SamplesReceived, 100)
	c.Set(h10.Add(70 * time.Minute))
	r1.advance() // closes 10:00
	r1.Add("a", SamplesReceived, 20)
	if err := r1.Flush(); err != nil { // a clean stop at 11:10
		t.Fatal(err)
	}

	// The next process starts within the same hour and adds to it.
	c.Set(h10.Add(80 * time.Minute))
	r2 := newTestRecorder(t, dir, c, nil)
	r2.Add("a", SamplesReceived, 3)
	r2.Add("b", Queries, 4)
	check := func(what string, rows []Row) {
		t.Helper()
		got := byKey(rows)
		if got["10/a"].SamplesReceived != 100 || got["11/a"].SamplesReceived != 23 || got["11/b"].Queries != 4 || len(rows) != 3 {
			t.Errorf("%s: %+v", what, rows)
		}
	}
	live, err := r2.Report(h10, h10.Add(2*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	check("live report after restart", live)
	c.Set(h10.Add(2*time.Hour + time.Second))
	r2.advance() // closes 11:00
	files, err := Report(dir, h10, h10.Add(2*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	check("files after the second process closed the hour", files)
	if got := byKey(files)["11/a"]; got.Partial {
		t.Errorf("hour 11 still partial after it closed: %+v", got)
	}
}

func TestFailedWriteIsRetried(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "usage")
	c := &clock{t: h10}
	r := newTestRecorder(t, dir, c, nil)
	r.Add("a", Queries, 1)
	// A file in place of the directory makes every write fail, even as root.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Set(h10.Add(time.Hour))
	r.advance()
	if len(r.unsaved) != 1 {
		t.Fatalf("%d unsaved hours, want 1", len(r.unsaved))
	}
	if err := errors.Join(os.Remove(dir), os.Mkdir(dir, 0o700)); err != nil {
		t.Fatal(err)
	}
	if rows, err := Report(dir, h10, h10.Add(time.Hour), nil); err != nil || len(rows) != 0 {
		t.Fatalf("files before the retry: %+v, %v", rows, err)
	}
	rows, err := r.Report(h10, h10.Add(time.Hour), nil)
	if err != nil || len(rows) != 1 || rows[0].Queries != 1 {
		t.Fatalf("report of an unsaved hour: %+v, %v", rows, err)
	}
	r.advance()
	if rows, err := Report(dir, h10, h10.Add(time.Hour), nil); err != nil || len(rows) != 1 || rows[0].Queries != 1 {
		t.Fatalf("after the retry: %+v, %v", rows, err)
	}
}

func TestRunFlushesOnStop(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: h10.Add(30 * time.Minute)}
	r := newTestRecorder(t, dir, c, func() map[string]Gauges { return map[string]Gauges{"a": {ActiveSeries: 3}} })
	r.tick = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	r.Add("a", ExemplarsReceived, 2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, err := Report(dir, h10, h10.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || !rows[0].Partial || rows[0].ExemplarsReceived != 2 || rows[0].ActiveSeries != 3 {
		t.Fatalf("after Run stopped: %+v", rows)
	}
}

func TestReportRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"garbage", "not json", "usage file"},
		{"other version", `{"version":9,"hour":"2025-03-04T10:00:00Z"}`, "version 9"},
		{"other hour", `{"version":1,"hour":"2025-03-04T11:00:00Z"}`, "holds hour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, fileName(h10)), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// Other names are not hour files and are skipped.
			if err := os.WriteFile(filepath.Join(dir, ".2025-03-04T10Z.json.tmp-1"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Report(dir, h10, h10.Add(time.Hour), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Report: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Add("a", Queries, 1)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if rows, err := r.Report(h10, h10.Add(time.Hour), nil); rows != nil || err != nil {
		t.Fatalf("Report = %v, %v", rows, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAddIgnoresBadInput(t *testing.T) {
	r := newTestRecorder(t, t.TempDir(), &clock{t: h10}, nil)
	r.Add("a", Queries, 0)
	r.Add("a", Queries, -5)
	r.Add("a", numKinds, 5)
	r.Add("a", Queries, 1)
	if got := r.snapshot()["a"]; got != (totals{Queries: 1}) {
		t.Fatalf("totals %v", got)
	}
}
