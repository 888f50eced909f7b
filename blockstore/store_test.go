package blockstore_test

import (
	"context"
	"errors"
	"math"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
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
	q, err := s.Querier(t.Context(), tenant, math.MinInt64, math.MaxInt64)
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

// hangingBucket is a bucket whose listings hang until released or until the
// caller's context ends: a stalled object store, which a real one does not
// produce on demand. Each listing first sends on entered.
type hangingBucket struct {
	bucket.Bucket
	entered, release chan struct{}
}

func (b hangingBucket) Iter(ctx context.Context, dir string, opts bucket.IterOptions, f func(string) error) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return b.Bucket.Iter(ctx, dir, opts, f)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestStoreSyncFollowsRequestContext: the sync of a tenant's block list ran
// with context.Background() under the tenant's lock, so a stalled bucket
// held every query of that tenant for as long as it stalled, whatever the
// queries' deadlines (#12).
func TestStoreSyncFollowsRequestContext(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	want := blockstoretest.Ship(t, b.Enc, "t1", 5, 3)
	hb := hangingBucket{Bucket: b.Enc, entered: make(chan struct{}, 10), release: make(chan struct{})}
	s := newStore(t, hb)
	release := sync.OnceFunc(func() { close(hb.release) })
	t.Cleanup(release) // before the store's Close, which takes the locks

	query := func() (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := s.Querier(ctx, "t1", math.MinInt64, math.MaxInt64)
			done <- err
		}()
		return cancel, done
	}
	wait := func(what string, done chan error) {
		t.Helper()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s after its context ended: %v, want context.Canceled", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s still waits 30s after its context ended", what)
		}
	}
	// The first query stalls in the sync, holding the tenant's lock; the
	// second waits for that lock. Each returns once its own context ends.
	cancelSyncing, syncing := query()
	<-hb.entered
	cancelWaiting, waiting := query()
	cancelWaiting()
	wait("the query waiting for the lock", waiting)
	cancelSyncing()
	wait("the query syncing", syncing)

	// The lock is free again: once the bucket answers, a query gets the data.
	release()
	if d := blockstoretest.Equal(blockstoretest.Read(t, querier(t, s, "t1")), want); d != "" {
		t.Fatal(d)
	}
}

// TestShardedStore is a store-gateway's store: it loads only the blocks it
// owns, answers by ID for those it holds, keeps a block marked for
// deletion (a querier may still name it), and the lister, what queriers
// read, drops it at once (#17).
func TestShardedStore(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	want := blockstoretest.Ship(t, b.Enc, "t1", 10, 6)
	metas, _, err := blockstore.ListBlocks(t.Context(), b.Enc, "t1")
	if err != nil || len(metas) < 4 {
		t.Fatalf("%d blocks (%v)", len(metas), err)
	}
	var all, owned []ulid.ULID
	for k, m := range metas {
		all = append(all, m.ULID)
		if k%2 == 1 {
			owned = append(owned, m.ULID)
		}
	}
	s := newStore(t, b.Enc)
	s.Shard(func(_ string, id ulid.ULID) bool { return slices.Contains(owned, id) })
	if err := s.Sync(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	q, held, err := s.BlocksQuerier(t.Context(), "t1", all, math.MinInt64, math.MaxInt64)
	if err != nil || !slices.Equal(held, owned) {
		t.Fatalf("holds %v (%v), want %v", held, err, owned)
	}
	got := blockstoretest.Read(t, q)
	if len(got) != len(want) || len(got["s000"]) >= len(want["s000"]) || len(got["s000"]) == 0 {
		t.Fatalf("%d series, s000 has %d of %d samples: want those of the owned blocks only", len(got), len(got["s000"]), len(want["s000"]))
	}

	lister := blockstore.NewLister(b.Enc, 0)
	if ls, err := lister.Blocks(t.Context(), "t1", math.MinInt64, math.MaxInt64); err != nil || len(ls) != len(metas) {
		t.Fatalf("the lister has %d blocks (%v), want %d", len(ls), err, len(metas))
	}
	mark := path.Join(blockstore.BlockDir("t1", owned[0]), blockstore.DeletionMarkFile)
	if err := b.Enc.Upload(t.Context(), mark, strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if ls, _ := lister.Blocks(t.Context(), "t1", math.MinInt64, math.MaxInt64); len(ls) != len(metas)-1 {
		t.Fatalf("after a deletion mark the lister has %d blocks, want %d", len(ls), len(metas)-1)
	}
	if err := s.Sync(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	q, held, err = s.BlocksQuerier(t.Context(), "t1", owned[:1], math.MinInt64, math.MaxInt64)
	if err != nil || len(held) != 1 {
		t.Fatalf("the marked block is not held any more (%v)", err)
	}
	_ = q.Close()
	if _, _, err := s.BlocksQuerier(t.Context(), "../t2", all, 0, 1); err == nil {
		t.Fatal("an invalid tenant ID was accepted")
	}
}
