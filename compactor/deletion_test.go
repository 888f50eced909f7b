package compactor_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/limits"
)

// TestDeletionRewritesBlocks is the compactor's part of #14. Two tenants
// hold identical series; a due request of tenant t deletes some series in
// a time range and one series whole. After the passes every block of the
// bucket, marked ones included, read through the block store, holds no
// deleted sample; every other sample of t reads as before, one by one;
// tenant u is untouched; a cancelled request and one still in its cancel
// period delete nothing.
func TestDeletionRewritesBlocks(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	end := time.Now().Truncate(8 * time.Minute)
	spec := blockstoretest.Spec{Tenant: "t", Series: 12, Minutes: 16, End: end}
	blockstoretest.ShipSpec(t, b.Enc, spec)
	spec.Tenant = "u"
	blockstoretest.ShipSpec(t, b.Enc, spec)
	before := map[string]samples{"t": scan(t, b, "t"), "u": scan(t, b, "u")}

	store := deletion.NewStore(b.Enc)
	from, to := end.Add(-12*time.Minute), end.Add(-5*time.Minute)
	mk := requests{t, store, end}.add
	due := mk(`m{s=~"s00[1-4]"}`, from, to, 0)
	whole := mk(`{s="s010"}`, end.Add(-time.Hour), end, 0)
	cancelled := mk(`{s="s005"}`, end.Add(-time.Hour), end, time.Minute)
	if _, err := store.Update(t.Context(), "t", cancelled.ID, func(r *deletion.Request) error {
		r.State = deletion.StateCancelled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waiting := mk(`{s="s006"}`, end.Add(-time.Hour), end, time.Hour)

	c := newCompactor(t, b, nil)
	c.SetClock(func() time.Time { return end.Add(time.Minute) })
	var told []string
	var processed []string
	if err := c.CarryOutDeletions(compactorDeletions(store, &told, &processed)); err != nil {
		t.Fatal(err)
	}
	for pass := 0; len(processed) < 2; pass++ {
		if pass == 10 {
			t.Fatalf("requests not processed after 10 passes: %v", list(t, store))
		}
		c.SetClock(func() time.Time { return end.Add(time.Duration(pass+1) * time.Minute) })
		if _, err := c.CompactTenant(context.Background(), "t"); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(told, ","); got != due.ID+","+whole.ID {
		t.Errorf("the heads were told of %s, want the two due requests", got)
	}
	states := list(t, store)
	for id, want := range map[string]deletion.State{due.ID: deletion.StateProcessed, whole.ID: deletion.StateProcessed,
		cancelled.ID: deletion.StateCancelled, waiting.ID: deletion.StatePending} {
		if states[id].State != want {
			t.Errorf("request %s is %s, want %s", id, states[id].State, want)
		}
	}
	if states[due.ID].BlocksRewritten == 0 || states[whole.ID].ProcessedAt.IsZero() {
		t.Errorf("processed requests: %+v", states)
	}

	deleted := func(ls labels.Labels, ts int64) bool {
		s := ls.Get("s")
		return s == "s010" || strings.HasPrefix(s, "s00") && s >= "s001" && s <= "s004" && ts >= from.UnixMilli() && ts <= to.UnixMilli()
	}
	after := scan(t, b, "t")
	for k := range after {
		if deleted(k.ls(), k.ts) {
			t.Fatalf("a block still holds %v at %d", k.ls(), k.ts)
		}
	}
	kept := 0
	for k, v := range before["t"] {
		if deleted(k.ls(), k.ts) {
			continue
		}
		kept++
		if got, ok := after[k]; !ok || got != v {
			t.Fatalf("%v at %d: %v %v, want %v", k.ls(), k.ts, got, ok, v)
		}
	}
	if kept != len(after) || kept == len(before["t"]) {
		t.Fatalf("%d samples left of %d, %d kept", len(after), len(before["t"]), kept)
	}
	if u := scan(t, b, "u"); fmt.Sprint(u) != fmt.Sprint(before["u"]) {
		t.Fatal("tenant u's samples changed")
	}
}

// sampleKey is one sample of a series of m, by its s label.
type sampleKey struct {
	s  string
	ts int64
}

func (k sampleKey) ls() labels.Labels { return labels.FromStrings("__name__", "m", "s", k.s) }

type samples map[sampleKey]float64

// scan reads every block of the tenant, marked or not. A sample held by
// several blocks (a replaced block not deleted yet) counts once.
func scan(t *testing.T, b blockstoretest.Buckets, tenant string) samples {
	t.Helper()
	out := samples{}
	blockstoretest.ScanBlocks(t, b.Enc, tenant, func(_ ulid.ULID, ls labels.Labels, ts int64, v float64) {
		out[sampleKey{ls.Get("s"), ts}] = v
	})
	return out
}

func list(t *testing.T, store *deletion.Store) map[string]deletion.Request {
	t.Helper()
	all, err := store.List(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]deletion.Request{}
	for _, r := range all {
		out[r.ID] = r
	}
	return out
}

// requests store requests of tenant t made at now.
type requests struct {
	t     *testing.T
	store *deletion.Store
	now   time.Time
}

func (q requests) add(sel string, start, end time.Time, cancel time.Duration) deletion.Request {
	q.t.Helper()
	var lim limits.Limits
	lim.RegisterFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	r, err := deletion.NewRequest(deletion.Params{Tenant: "t", Selectors: []string{sel}, Start: rfc(start), End: rfc(end)}, lim, q.now, cancel)
	if err != nil {
		q.t.Fatal(err)
	}
	if err := q.store.Add(q.t.Context(), r, 0); err != nil {
		q.t.Fatal(err)
	}
	return r
}

// compactorDeletions carries out the requests of store, recording which
// requests the heads were told of and which were processed.
func compactorDeletions(store *deletion.Store, told, processed *[]string) compactor.Deletions {
	return compactor.Deletions{Store: store,
		Heads: compactor.HeadsFunc(func(_ context.Context, tenant string, r deletion.Request) error {
			*told = append(*told, r.ID)
			return nil
		}),
		Processed: func(r deletion.Request) { *processed = append(*processed, r.ID) },
	}
}

// TestDeletionWaitsForHeads: while the ingesters cannot be told of a due
// request (one is down), it stays pending and untouched, and the tenant's
// compaction goes on; once they can, it is carried out (#14).
func TestDeletionWaitsForHeads(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	end := time.Now().Truncate(8 * time.Minute)
	blockstoretest.ShipSpec(t, b.Enc, blockstoretest.Spec{Tenant: "t", Series: 4, Minutes: 8, End: end})
	store := deletion.NewStore(b.Enc)
	r := requests{t, store, end}.add(`{s="s001"}`, time.Unix(0, 0), end, 0)
	c := newCompactor(t, b, nil)
	c.SetClock(func() time.Time { return end.Add(time.Minute) })
	down := true
	if err := c.CarryOutDeletions(compactor.Deletions{Store: store, Heads: compactor.HeadsFunc(func(context.Context, string, deletion.Request) error {
		if down {
			return fmt.Errorf("ingester-2 is unhealthy")
		}
		return nil
	})}); err != nil {
		t.Fatal(err)
	}
	before, _ := blocks(t, b.Enc, "t")
	if _, err := c.CompactTenant(t.Context(), "t"); err != nil {
		t.Fatalf("a pass with an ingester down: %v", err)
	}
	after, _ := blocks(t, b.Enc, "t")
	if got := list(t, store)[r.ID]; got.State != deletion.StatePending || !got.HeadsAppliedAt.IsZero() || got.BlocksRewritten != 0 || after >= before {
		t.Fatalf("with an ingester down: %+v, blocks %d → %d", got, before, after)
	}
	down = false
	for pass := 0; list(t, store)[r.ID].State != deletion.StateProcessed; pass++ {
		if pass == 5 {
			t.Fatalf("not processed after 5 passes: %+v", list(t, store)[r.ID])
		}
		c.SetClock(func() time.Time { return end.Add(time.Duration(pass+2) * time.Minute) })
		if _, err := c.CompactTenant(t.Context(), "t"); err != nil {
			t.Fatal(err)
		}
	}
}
