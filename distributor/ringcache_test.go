package distributor

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
)

// TestRingSetsMatchTheRing checks that the memoized replication sets are
// the ring's own, for keys anywhere, on token boundaries included.
func TestRingSetsMatchTheRing(t *testing.T) {
	r := testRing(t, 6, 0)
	sets := &ringSets{ring: r, now: time.Now}
	tokens := r.Tokens()
	keys := []uint32{0, 1, ^uint32(0), tokens[0], tokens[0] - 1, tokens[len(tokens)-1], tokens[len(tokens)-1] + 1}
	for _, tk := range tokens[:50] {
		keys = append(keys, tk, tk-1, tk+1)
	}
	for range 5000 {
		keys = append(keys, rand.Uint32())
	}
	ids := func(rs ring.ReplicationSet) []string {
		out := rs.GetIDs()
		slices.Sort(out)
		return out
	}
	snap := sets.snapshot()
	for _, k := range keys {
		want, err := r.Get(k, ring.WriteNoExtend, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		e := snap.get(r, k)
		got, err := e.set, e.err
		if err != nil || !slices.Equal(ids(got), ids(want)) || got.MaxErrors != want.MaxErrors {
			t.Fatalf("key %d: memoized %v (max errors %d, %v), ring %v (max errors %d)", k, ids(got), got.MaxErrors, err, ids(want), want.MaxErrors)
		}
		// Each instance's place is its own, the same in every set.
		for j, inst := range e.set.Instances {
			if at, ok := snap.index[inst.Addr]; !ok || at != e.at[j] {
				t.Fatalf("key %d: instance %s at place %d, the snapshot has it at %d (%v)", k, inst.Addr, e.at[j], at, ok)
			}
		}
	}
	if len(snap.index) != 6 {
		t.Fatalf("the snapshot placed %d instances, want the ring's 6", len(snap.index))
	}
}
