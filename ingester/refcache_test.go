package ingester

import (
	"testing"
	"unsafe"

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
