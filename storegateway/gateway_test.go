package storegateway_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/storegateway"
)

// ownerFunc adapts a function to storegateway.Owner.
type ownerFunc func(ulid.ULID) bool

func (f ownerFunc) OwnsBlock(id ulid.ULID) bool { return f(id) }

// TestGatewaySyncsOwnedBlocks: a store-gateway's first background sync
// loads the blocks of every tenant that it owns, and a read naming every
// block is answered for those only (#17).
func TestGatewaySyncsOwnedBlocks(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	blockstoretest.Ship(t, b.Enc, "t1", 5, 4)
	blockstoretest.Ship(t, b.Enc, "t2", 5, 4)
	store, err := blockstore.New(blockstore.Config{Dir: t.TempDir(), SyncInterval: time.Hour, ChunkCacheSize: 32 << 20}, b.Enc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	odd := ownerFunc(func(id ulid.ULID) bool { return id[15]%2 == 1 })
	gw, err := storegateway.New(storegateway.Config{ShardingEnabled: true, SyncInterval: time.Hour}, store, b.Enc, odd, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); !gw.Synced(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first sync did not end")
		}
	}
	for _, tenant := range []string{"t1", "t2"} {
		metas, _, err := blockstore.ListBlocks(t.Context(), b.Enc, tenant)
		if err != nil {
			t.Fatal(err)
		}
		var all, want []ulid.ULID
		for _, m := range metas {
			all = append(all, m.ULID)
			if odd(m.ULID) {
				want = append(want, m.ULID)
			}
		}
		q, held, err := gw.BlocksQuerier(t.Context(), tenant, all, math.MinInt64, math.MaxInt64)
		if err != nil || !slices.Equal(held, want) {
			t.Fatalf("%s: holds %v (%v), want %v", tenant, held, err, want)
		}
		_ = q.Close()
	}
	if _, err := storegateway.New(storegateway.Config{}, store, b.Enc, odd, nil, nil); err == nil {
		t.Fatal("a zero sync interval was accepted")
	}
}
