package rpc

import (
	"errors"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// TestStoreGatewayService serves a real block store, sharded to half of
// team-a's blocks, through the store-gateway service on loopback: a read
// names every block and gets the series of the held half, which the
// answer lists; another tenant naming team-a's blocks gets nothing and
// holds none of them; a call without the credential or naming no tenant
// is refused (#17).
func TestStoreGatewayService(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	blockstoretest.Ship(t, b.Enc, "team-a", 10, 6)
	metas, _, err := blockstore.ListBlocks(t.Context(), b.Enc, "team-a")
	if err != nil || len(metas) < 4 {
		t.Fatalf("%d blocks (%v)", len(metas), err)
	}
	var ids, half []ulid.ULID
	for k, m := range metas {
		ids = append(ids, m.ULID)
		if k%2 == 0 {
			half = append(half, m.ULID)
		}
	}
	store, err := blockstore.New(blockstore.Config{Dir: t.TempDir(), SyncInterval: time.Hour, ChunkCacheSize: 32 << 20}, b.Enc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	store.Shard(func(_ string, id ulid.ULID) bool { return slices.Contains(half, id) })
	cred := credential(t, "0123456789abcdef0123")
	srv := grpc.NewServer(cred.ServerOptions()...)
	RegisterStoreGateway(srv, store, ServiceOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	c, err := DialStoreGateway(ln.Addr().String(), cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })

	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
	series, held, err := c.Series(tenantauth.With(t.Context(), "test", "team-a"), ids, math.MinInt64, math.MaxInt64, nil, m)
	if err != nil || len(series) != 10 {
		t.Fatalf("%d series (%v), want 10", len(series), err)
	}
	if !slices.Equal(sorted(held), sorted(half)) {
		t.Fatalf("the answer holds %v, want %v", held, half)
	}
	var chunks int
	for _, s := range series {
		for it := s.Iterator(nil); it.Next(); chunks++ {
			c := it.At()
			if !slices.ContainsFunc(metas, func(bm tsdb.BlockMeta) bool {
				return slices.Contains(half, bm.ULID) && c.MinTime >= bm.MinTime && c.MaxTime < bm.MaxTime
			}) {
				t.Fatalf("a chunk of [%d, %d] is of a block the store-gateway does not hold", c.MinTime, c.MaxTime)
			}
		}
	}
	if chunks == 0 {
		t.Fatal("no chunks")
	}
	names, held, err := c.LabelNames(tenantauth.With(t.Context(), "test", "team-a"), ids, math.MinInt64, math.MaxInt64, 0)
	if err != nil || !slices.Equal(names, []string{"__name__", "s"}) || len(held) != len(half) {
		t.Fatalf("label names %v of %d blocks (%v)", names, len(held), err)
	}

	other := tenantauth.With(t.Context(), "test", "team-b")
	if series, held, err := c.Series(other, ids, math.MinInt64, math.MaxInt64, nil, m); err != nil || len(series) != 0 || len(held) != 0 {
		t.Fatalf("team-b naming team-a's blocks: %d series, holds %v (%v), want none", len(series), held, err)
	}
	var e *Error
	wrong, err := DialStoreGateway(ln.Addr().String(), credential(t, "another-secret-of-20b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if _, _, err := wrong.Series(tenantauth.With(t.Context(), "test", "team-a"), ids, 0, 1, nil, m); !errors.As(err, &e) || e.Code != codes.Unauthenticated {
		t.Fatalf("call with another secret: %v, want Unauthenticated", err)
	}
}

func sorted(ids []ulid.ULID) []ulid.ULID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b ulid.ULID) int { return a.Compare(b) })
	return out
}
