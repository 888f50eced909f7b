package compactor_test

import (
	"context"
	"flag"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/limits"
)

func newCompactor(t *testing.T, b blockstoretest.Buckets, mod func(*limits.Limits)) *compactor.Compactor {
	t.Helper()
	return newCompactorWith(t, b, mod, nil)
}

func newCompactorLogged(t *testing.T, b blockstoretest.Buckets, l *slog.Logger) *compactor.Compactor {
	t.Helper()
	return newCompactorWith(t, b, nil, l)
}

func newCompactorWith(t *testing.T, b blockstoretest.Buckets, mod func(*limits.Limits), l *slog.Logger) *compactor.Compactor {
	t.Helper()
	var cfg compactor.Config
	var lim limits.Limits
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	if err := fs.Parse([]string{"-compactor.block-ranges=1m,4m,8m", "-compactor.deletion-delay=0s"}); err != nil {
		t.Fatal(err)
	}
	cfg.Dir = t.TempDir()
	if mod != nil {
		mod(&lim)
	}
	c, err := compactor.New(cfg, b.Raw, b.Enc, b.Keys, limits.NewOverrides(lim), l, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readAll reads the tenant's data through a fresh block store.
func readAll(t *testing.T, bkt bucket.Bucket, tenant string) blockstoretest.Data {
	t.Helper()
	s, err := blockstore.New(blockstore.Config{Dir: t.TempDir(), SyncInterval: time.Hour, ChunkCacheSize: 32 << 20}, bkt, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := s.Querier(t.Context(), tenant, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	return blockstoretest.Read(t, q)
}

func blocks(t *testing.T, bkt bucket.Bucket, tenant string) (live, marked int) {
	t.Helper()
	metas, marks, err := blockstore.ListBlocks(context.Background(), bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if marks[m.ULID] {
			marked++
		} else {
			live++
		}
	}
	return live, marked
}

// TestCompactionMergesCopiesAndLevels compacts two copies of 20 one-minute
// blocks. The data ends at a multiple of 8 minutes and the compactor's clock
// stands one minute later, so every window has settled and the outcome is
// fixed: it used to read the wall clock twice and skip itself when the
// minute turned between the copies (#12).
func TestCompactionMergesCopiesAndLevels(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	end := time.Now().Truncate(8 * time.Minute)
	// Two ingesters with the same samples: the copies of a replicated write.
	spec := blockstoretest.Spec{Tenant: "t", Series: 20, Minutes: 20, End: end}
	want := blockstoretest.ShipSpec(t, b.Enc, spec)
	if d := blockstoretest.Equal(blockstoretest.ShipSpec(t, b.Enc, spec), want); d != "" {
		t.Fatalf("the second copy differs: %s", d)
	}
	before, _ := blocks(t, b.Enc, "t")
	if d := blockstoretest.Equal(readAll(t, b.Enc, "t"), want); d != "" {
		t.Fatalf("before compaction: %s", d)
	}
	c := newCompactor(t, b, nil)
	c.SetClock(func() time.Time { return end.Add(time.Minute) })
	// Each pass runs at most 8 compactions; this needs 28 (20 vertical, 5
	// into 4m blocks, 3 into 8m blocks), so passes run until none is left.
	passes := 0
	for left := 1; left > 0; passes++ {
		if passes == 10 {
			t.Fatal("compactions still planned after 10 passes")
		}
		var err error
		if left, err = c.CompactTenant(context.Background(), "t"); err != nil {
			t.Fatal(err)
		}
	}
	after, marked := blocks(t, b.Enc, "t")
	t.Logf("blocks: %d before, %d after %d passes (%d marked)", before, after, passes, marked)
	// 20 minutes ending at a multiple of 8: the first 4 minutes fill a 4m
	// block alone in their 8m window, the next 16 two 8m blocks.
	if before != 40 || after != 3 {
		t.Fatalf("%d blocks after compaction of %d, want 3 of 40", after, before)
	}
	if d := blockstoretest.Equal(readAll(t, b.Enc, "t"), want); d != "" {
		t.Fatalf("after compaction: %s", d)
	}
}

func TestRetention(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	blockstoretest.Ship(t, b.Enc, "t", 5, 10)
	c := newCompactor(t, b, func(l *limits.Limits) { l.CompactorBlocksRetentionPeriod = 5 * time.Minute })
	c.RunOnce(context.Background())
	c.RunOnce(context.Background())
	got := readAll(t, b.Enc, "t")
	for name, vs := range got {
		if len(vs) > 6*6 {
			t.Fatalf("series %s keeps %d samples, more than 6 minutes' worth after a 5m retention", name, len(vs))
		}
	}
	if len(got) == 0 {
		t.Fatal("retention removed everything, including data inside the window")
	}
}

func TestDeletedTenantIsRemoved(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	blockstoretest.Ship(t, b.Enc, "gone", 5, 3)
	want := blockstoretest.Ship(t, b.Enc, "kept", 5, 3)
	if err := b.Keys.DeleteTenantKeys(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	newCompactor(t, b, nil).RunOnce(context.Background())
	var left []string
	if err := b.Raw.Iter(context.Background(), "gone", bucket.IterOptions{Recursive: true}, func(n string) error {
		left = append(left, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("objects of the deleted tenant left: %s", strings.Join(left, ", "))
	}
	if d := blockstoretest.Equal(readAll(t, b.Enc, "kept"), want); d != "" {
		t.Fatalf("the other tenant: %s", d)
	}
}
