package compactor_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
)

// turns is a sharding where ownership of each tenant goes round in slots
// of 1.5s from start: c1 alone, both (a ring change that has not reached
// both compactors), c2 alone, both. Tenant tN starts N-1 slots in, so that
// from the first slot on each compactor has a tenant of its own: which of
// them works does not hang on where the wall clock stands when the test
// starts, nor on how fast the machine compacts.
type turns struct {
	id     string
	start  time.Time
	offset map[string]int64
}

func (e turns) Owns(tenant string) bool {
	slot := (time.Since(e.start).Milliseconds()/1500 + e.offset[tenant]) % 4
	return slot%2 == 1 || (slot == 0) == (e.id == "c1")
}
func (e turns) InstanceID() string { return e.id }

// passLog records the "tenant pass started/finished" entries.
type passLog struct {
	mu     sync.Mutex
	events []passEvent
}

type passEvent struct {
	tenant, instance string
	start            bool
	at               time.Time
}

func (p *passLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *passLog) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *passLog) WithGroup(string) slog.Handler            { return p }
func (p *passLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "tenant pass started" && r.Message != "tenant pass finished" {
		return nil
	}
	e := passEvent{start: r.Message == "tenant pass started", at: time.Now()}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "tenant":
			e.tenant = a.Value.String()
		case "instance":
			e.instance = a.Value.String()
		}
		return true
	})
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
	return nil
}

// TestLeaseKeepsCompactorsApart runs two compactors between which the
// ownership of four tenants goes back and forth, with times when both
// own all, each pass slowed down: every tenant ends compacted, and no
// tenant's passes by the two ever overlap (#17).
func TestLeaseKeepsCompactorsApart(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	end := time.Now().Truncate(8 * time.Minute)
	tenants := []string{"t1", "t2", "t3", "t4"}
	for _, tn := range tenants {
		spec := blockstoretest.Spec{Tenant: tn, Series: 5, Minutes: 8, End: end}
		blockstoretest.ShipSpec(t, b.Enc, spec)
		blockstoretest.ShipSpec(t, b.Enc, spec)
	}
	log := &passLog{}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	start, offset := time.Now(), map[string]int64{}
	for k, tn := range tenants {
		offset[tn] = int64(k)
	}
	for _, id := range []string{"c1", "c2"} {
		c := newCompactorLogged(t, b, slog.New(log))
		c.SetClock(func() time.Time { return end.Add(time.Minute) })
		if err := c.ShardTenants(turns{id: id, start: start, offset: offset}, time.Second); err != nil {
			t.Fatal(err)
		}
		c.DelayEachPass(50 * time.Millisecond)
		wg.Go(func() {
			for ctx.Err() == nil && !allCompacted(t, b, tenants) {
				c.RunOnce(ctx)
			}
		})
	}
	wg.Wait()
	if !allCompacted(t, b, tenants) {
		t.Fatal("not every tenant was compacted in time")
	}
	checkNoOverlap(t, log.events)
}

func allCompacted(t *testing.T, b blockstoretest.Buckets, tenants []string) bool {
	for _, tn := range tenants {
		if live, _ := blocks(t, b.Enc, tn); live != 1 {
			return false
		}
	}
	return true
}

// checkNoOverlap fails the test if two instances' passes over one tenant
// overlap in time, or if only one instance ever worked.
func checkNoOverlap(t *testing.T, events []passEvent) {
	t.Helper()
	type span struct {
		instance   string
		start, end time.Time
	}
	open := map[string]passEvent{}
	spans := map[string][]span{}
	workers := map[string]bool{}
	for _, e := range events {
		k := e.tenant + "/" + e.instance
		if e.start {
			open[k] = e
			continue
		}
		s := open[k]
		delete(open, k)
		spans[e.tenant] = append(spans[e.tenant], span{e.instance, s.at, e.at})
		workers[e.instance] = true
	}
	for tn, ss := range spans {
		for i, a := range ss {
			for _, o := range ss[i+1:] {
				if a.instance != o.instance && a.start.Before(o.end) && o.start.Before(a.end) {
					t.Errorf("tenant %s: %s worked %s–%s while %s worked %s–%s", tn, a.instance, a.start.Format(time.StampMilli),
						a.end.Format(time.StampMilli), o.instance, o.start.Format(time.StampMilli), o.end.Format(time.StampMilli))
				}
			}
		}
	}
	t.Logf("%d tenants, passes by %v: %s", len(spans), workers, fmt.Sprint(len(events)/2))
	if len(workers) != 2 {
		t.Errorf("passes by %v, want both compactors to have worked", workers)
	}
}
