package blockstore_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/bucket"
)

func newStore(t testing.TB, bkt bucket.Bucket) *blockstore.Store {
	t.Helper()
	s, err := blockstore.New(blockstore.Config{Dir: t.TempDir(), SyncInterval: time.Hour, ChunkCacheSize: 32 << 20}, bkt, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func querier(t testing.TB, s *blockstore.Store, tenant string) storage.Querier {
	t.Helper()
	q, err := s.Querier(tenant, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestStoreReadsShippedBlocks(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	want := blockstoretest.Ship(t, b.Enc, "t1", 50, 12)
	s := newStore(t, b.Enc)
	if d := blockstoretest.Equal(blockstoretest.Read(t, querier(t, s, "t1")), want); d != "" {
		t.Fatal(d)
	}
	if got := blockstoretest.Read(t, querier(t, s, "nobody")); len(got) != 0 {
		t.Fatalf("unknown tenant sees %d series", len(got))
	}
	metas, _, err := blockstore.ListBlocks(context.Background(), b.Enc, "t1")
	if err != nil || len(metas) < 10 {
		t.Fatalf("%d blocks in the bucket (%v), want one a minute", len(metas), err)
	}
}

func TestStoreAfterKeyDeletion(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	blockstoretest.Ship(t, b.Enc, "gone", 5, 3)
	s := newStore(t, b.Enc)
	if got := blockstoretest.Read(t, querier(t, s, "gone")); len(got) != 5 {
		t.Fatalf("before deletion: %d series", len(got))
	}
	if err := b.Keys.DeleteTenantKeys(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	s.Forget("gone")
	if got := blockstoretest.Read(t, querier(t, s, "gone")); len(got) != 0 {
		t.Fatalf("after key deletion: %d series readable", len(got))
	}
}
