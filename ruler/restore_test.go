package ruler

import (
	"fmt"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

const restoreGroup = `name: restore
interval: 200ms
rules:
  - alert: LongPending
    expr: vector(1)
    for: 1h
  - alert: Firing
    expr: vector(2)
    for: 400ms
`

// alertsByName returns the tenant's alerts by alert name.
func (e *env) alertsByName(tenant string) map[string]apiAlert {
	var got struct{ Alerts []apiAlert }
	e.promAPI("/prometheus/api/v1/alerts", tenant, &got)
	out := map[string]apiAlert{}
	for _, a := range got.Alerts {
		out[a.Labels["alertname"]] = a
	}
	return out
}

// TestRestoreForState restarts the ruler over the same storage: a pending
// alert stays pending and keeps the time it already spent pending (its
// activeAt moves by the outage, as Prometheus restores it), and a firing
// alert keeps its activeAt (to the second, the resolution of
// ALERTS_FOR_STATE).
func TestRestoreForState(t *testing.T) {
	cfg := testConfig(t)
	cfg.ForGracePeriod = 100 * time.Millisecond
	e := newEnv(t, cfg, nil, nil)
	e.post("team-a", "ns", restoreGroup)
	var before map[string]apiAlert
	testbin.Eventually(t, 10*time.Second, func() error {
		before = e.alertsByName("team-a")
		if before["LongPending"].State != "pending" || before["Firing"].State != "firing" {
			return fmt.Errorf("alerts %+v", before)
		}
		if len(e.latest(`{__name__="ALERTS_FOR_STATE"}`)) != 2 {
			return fmt.Errorf("no ALERTS_FOR_STATE yet")
		}
		// ALERTS_FOR_STATE has a resolution of a second: be pending for
		// more than two, so that the restored activeAt is clearly before
		// the restart.
		if d := time.Since(before["LongPending"].ActiveAt); d < 2500*time.Millisecond {
			return fmt.Errorf("pending for %s only", d)
		}
		return nil
	})
	e.stop()
	forState := e.latest(`{__name__="ALERTS_FOR_STATE",alertname="LongPending"}`)
	lastWrite := lastSampleTime(t, e, `{__name__="ALERTS_FOR_STATE",alertname="LongPending"}`)

	restart := time.Now()
	e2 := newEnv(t, cfg, e.db, e.bkt)
	var after map[string]apiAlert
	testbin.Eventually(t, 10*time.Second, func() error {
		after = e2.alertsByName("team-a")
		if a := after["LongPending"]; a.State != "pending" || !a.ActiveAt.Before(restart) {
			return fmt.Errorf("pending alert not restored yet: %+v", a)
		}
		if a := after["Firing"]; a.State != "firing" || !a.ActiveAt.Before(restart) {
			return fmt.Errorf("firing alert not restored yet: %+v", a)
		}
		return nil
	})
	observed := time.Now()

	if got, want := after["Firing"].ActiveAt, before["Firing"].ActiveAt.Truncate(time.Second); !got.Equal(want) {
		t.Errorf("firing alert: activeAt %s after the restart, want %s", got, want)
	}
	// Prometheus shifts a pending alert's activeAt by the outage, measured
	// from the last ALERTS_FOR_STATE sample (to the second) to the restore.
	orig := time.Unix(int64(forState[`{__name__="ALERTS_FOR_STATE", alertname="LongPending"}`]), 0)
	if !orig.Equal(before["LongPending"].ActiveAt.Truncate(time.Second)) {
		t.Fatalf("ALERTS_FOR_STATE holds %s, the alert was active at %s", orig, before["LongPending"].ActiveAt)
	}
	down := lastWrite.Truncate(time.Second)
	lo, hi := orig.Add(restart.Sub(down)), orig.Add(observed.Sub(down))
	if got := after["LongPending"].ActiveAt; got.Before(lo.Truncate(time.Second)) || got.After(hi) {
		t.Errorf("pending alert: activeAt %s after the restart, want within [%s, %s] (original %s)", got, lo, hi, before["LongPending"].ActiveAt)
	}
}

// lastSampleTime returns the time of the newest sample matching selector.
func lastSampleTime(t *testing.T, e *env, selector string) time.Time {
	ms, err := e.r.parser.ParseMetricSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	q, err := e.db.Querier(0, time.Now().Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var last int64
	ss := q.Select(t.Context(), false, nil, ms...)
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			last = max(last, it.AtT())
		}
	}
	return time.UnixMilli(last)
}
