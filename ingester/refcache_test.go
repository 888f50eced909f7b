package ingester

import (
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/remotewrite"
)

func TestRefShardFillsCacheLines(t *testing.T) {
	if n := unsafe.Sizeof(refShard{}); n != 128 {
		t.Fatalf("refShard is %d bytes, want 128 (two cache lines, no sharing)", n)
	}
}

func TestRefCacheKeysEqualInFirst64Bits(t *testing.T) {
	c := newRefCache()
	a := remotewrite.SeriesKey{H1: 42, H2: 1}
	b := remotewrite.SeriesKey{H1: 42, H2: 1 + refShards} // same shard
	c.put(a, 7)
	if ref, ok := c.get(a); !ok || ref != 7 {
		t.Fatalf("get(a) = %d, %v; want 7, true", ref, ok)
	}
	if _, ok := c.get(b); ok {
		t.Fatal("get(b) hit a's entry: the last 32 bits must be compared")
	}
	c.put(b, 8)
	if _, ok := c.get(a); ok {
		t.Fatal("get(a) hit after b took the entry")
	}
	c.forget(a) // not a's entry any more: b stays
	if ref, ok := c.get(b); !ok || ref != 8 {
		t.Fatalf("get(b) = %d, %v after forget(a); want 8, true", ref, ok)
	}
	if got := c.size.Load(); got != 1 {
		t.Fatalf("size = %d, want 1", got)
	}
}

func TestRefCacheGetAll(t *testing.T) {
	c := newRefCache()
	keys := []remotewrite.SeriesKey{
		{H1: 1, H2: 5},
		{H1: 2, H2: 5 + refShards}, // same shard as the first
		{H1: 3, H2: 6},
		{},                         // no key: never cached
		{H1: 1, H2: 5 + refShards}, // first 64 bits of the first, other 32
		{H1: 4, H2: 7},             // not cached
	}
	c.put(keys[0], 10)
	c.put(keys[1], 20)
	c.put(keys[2], 30)
	series := make([]remotewrite.Series, len(keys))
	for i, k := range keys {
		series[i].Key = k
	}
	refs := []storage.SeriesRef{99, 99, 99, 99, 99, 99}
	c.getAll(series, refs, make([]int32, len(series)))
	want := []storage.SeriesRef{10, 20, 30, 0, 0, 0}
	for i := range want {
		if refs[i] != want[i] {
			t.Fatalf("refs = %v, want %v", refs, want)
		}
		if got, _ := c.get(keys[i]); got != want[i] {
			t.Fatalf("get(%v) = %d, getAll said %d", keys[i], got, want[i])
		}
	}
}

func TestRefCachePutAll(t *testing.T) {
	c := newRefCache()
	keys := []remotewrite.SeriesKey{{H1: 1, H2: 5}, {H1: 2, H2: 5 + refShards}, {}, {H1: 3, H2: 6}}
	series := make([]remotewrite.Series, len(keys))
	for i, k := range keys {
		series[i].Key = k
	}
	c.put(keys[3], 1)
	refs := []storage.SeriesRef{10, 20, 30, 40}
	idx := []int32{0, 1, 2, 3} // the zero key is never cached
	c.putAll(series, refs, idx, make([]int32, len(idx)))
	for i, want := range []storage.SeriesRef{10, 20, 0, 40} {
		if got, _ := c.get(keys[i]); got != want {
			t.Fatalf("get(%v) = %d, want %d", keys[i], got, want)
		}
	}
	if got := c.size.Load(); got != 3 {
		t.Fatalf("size = %d, want 3", got)
	}
}
