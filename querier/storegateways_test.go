package querier

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// storeReader reads a real block store as a store-gateway would serve it;
// err, when set, is the failure it injects instead.
type storeReader struct {
	s   *blockstore.Store
	err error
}

func (r *storeReader) Series(ctx context.Context, ids []ulid.ULID, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) ([]storage.ChunkSeries, []ulid.ULID, error) {
	if r.err != nil {
		return nil, nil, r.err
	}
	tenant, _ := tenantauth.Tenant(ctx)
	cq, held, err := r.s.BlocksChunkQuerier(ctx, tenant, ids, mint, maxt)
	if err != nil {
		return nil, nil, err
	}
	defer cq.Close()
	var out []storage.ChunkSeries
	for set := cq.Select(ctx, true, hints, ms...); set.Next(); {
		out = append(out, set.At())
	}
	return out, held, nil
}

func (r *storeReader) LabelNames(ctx context.Context, ids []ulid.ULID, mint, maxt int64, _ int, ms ...*labels.Matcher) ([]string, []ulid.ULID, error) {
	if r.err != nil {
		return nil, nil, r.err
	}
	tenant, _ := tenantauth.Tenant(ctx)
	q, held, err := r.s.BlocksQuerier(ctx, tenant, ids, mint, maxt)
	if err != nil {
		return nil, nil, err
	}
	defer q.Close()
	names, _, err := q.LabelNames(ctx, nil, ms...)
	return names, held, err
}

func (r *storeReader) LabelValues(context.Context, []ulid.ULID, string, int64, int64, int, ...*labels.Matcher) ([]string, []ulid.ULID, error) {
	return nil, nil, errors.New("not used")
}

// rotatingOwners gives every block the three store-gateways a, b and c,
// the first one picked by the block's place in ID order, as a ring spreads
// them: a is first for blocks 0, 3, 6 and so on.
type rotatingOwners struct {
	index map[ulid.ULID]int
	err   error
}

func (o rotatingOwners) BlockOwners(id ulid.ULID) (ring.ReplicationSet, error) {
	all := []ring.InstanceDesc{{Id: "sg-a", Addr: "a"}, {Id: "sg-b", Addr: "b"}, {Id: "sg-c", Addr: "c"}}
	k := o.index[id] % 3
	return ring.ReplicationSet{Instances: append(all[k:], all[:k]...)}, o.err
}

// TestStoreGatewaysRetryOnOtherOwners reads a tenant's shipped blocks
// through three store-gateways that own every block (RF 3), when each
// answers, when one fails, when one holds only some of its blocks, and
// when every owner of a block fails: the answer is whole, read from the
// other owners, or the read fails naming the blocks and every owner's
// reason (#17).
func TestStoreGatewaysRetryOnOtherOwners(t *testing.T) {
	b := blockstoretest.NewBuckets(t)
	want := blockstoretest.Ship(t, b.Enc, "t1", 20, 8)
	metas, _, err := blockstore.ListBlocks(t.Context(), b.Enc, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) < 4 {
		t.Fatalf("%d blocks shipped, want 4 or more: a is first for blocks 0 and 3", len(metas))
	}
	slices.SortFunc(metas, func(x, y tsdb.BlockMeta) int { return x.ULID.Compare(y.ULID) })
	index := make(map[ulid.ULID]int, len(metas))
	for k, m := range metas {
		index[m.ULID] = k
	}
	newStore := func(owns func(ulid.ULID) bool) *blockstore.Store {
		s, err := blockstore.New(blockstore.Config{Dir: t.TempDir(), SyncInterval: time.Hour, ChunkCacheSize: 32 << 20}, b.Enc, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Shard(func(_ string, id ulid.ULID) bool { return owns(id) })
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	all := func(ulid.ULID) bool { return true }
	down := errors.New("connection refused")
	for _, tc := range []struct {
		name    string
		readers map[string]*storeReader
		owners  rotatingOwners
		retries bool
		wantErr []string
	}{
		{name: "every owner answers", readers: map[string]*storeReader{"a": {s: newStore(all)}, "b": {s: newStore(all)}, "c": {s: newStore(all)}}},
		{name: "one fails", retries: true,
			readers: map[string]*storeReader{"a": {err: down}, "b": {s: newStore(all)}, "c": {s: newStore(all)}}},
		{name: "one holds half its blocks", retries: true, readers: map[string]*storeReader{
			"a": {s: newStore(func(id ulid.ULID) bool { return index[id] != 3 })}, "b": {s: newStore(all)}, "c": {s: newStore(all)}}},
		{name: "two fail", retries: true,
			readers: map[string]*storeReader{"a": {err: down}, "b": {err: down}, "c": {s: newStore(all)}}},
		{name: "every owner fails", readers: map[string]*storeReader{"a": {err: down}, "b": {err: down}, "c": {s: newStore(func(ulid.ULID) bool { return false })}},
			wantErr: []string{"blocks were not answered by any store-gateway", "sg-a (a): connection refused", "sg-b (b): connection refused", "sg-c (c): does not hold it"}},
		{name: "no ring", owners: rotatingOwners{err: ring.ErrEmptyRing}, readers: map[string]*storeReader{},
			wantErr: []string{"no store-gateway owns it", "empty ring"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owners := tc.owners
			owners.index = index
			g := NewStoreGateways(blockstore.NewLister(b.Enc, time.Hour), owners, func(addr string) (StoreGatewayReader, error) {
				return tc.readers[addr], nil
			}, nil)
			ctx := tenantauth.With(t.Context(), "test", "t1")
			q, err := g.Querier(ctx, "t1", math.MinInt64, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != nil {
				set := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
				if set.Next() || set.Err() == nil {
					t.Fatal("the read succeeded")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(set.Err().Error(), w) {
						t.Errorf("error %q does not say %q", set.Err(), w)
					}
				}
				return
			}
			names, _, err := q.LabelNames(ctx, nil)
			if err != nil || strings.Join(names, ",") != "__name__,s" {
				t.Fatalf("label names %v (%v)", names, err)
			}
			if d := blockstoretest.Equal(blockstoretest.Read(t, q), want); d != "" {
				t.Fatal(d)
			}
			if r := testutil.ToFloat64(g.retries); (r > 0) != tc.retries {
				t.Fatalf("%v blocks asked again, want retries %v", r, tc.retries)
			}
		})
	}
}
