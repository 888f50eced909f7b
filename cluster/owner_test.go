package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
)

// staticRing is a role ring over an in-memory KV store holding desc.
func staticRing(t *testing.T, desc *ring.Desc, timeout time.Duration) *RoleRing {
	t.Helper()
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	if err := kv.CAS(context.Background(), "ruler", func(any) (any, bool, error) { return desc, true, nil }); err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: timeout, ReplicationFactor: 1}, "ruler", "ruler", kv,
		ring.NewIgnoreUnhealthyInstancesReplicationStrategy(), nil, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	return &RoleRing{ring: r, cfg: RoleRingConfig{ReplicationFactor: 1, HeartbeatPeriod: time.Second, HeartbeatTimeout: timeout}}
}

// TestOwnerPassesUnhealthy: a key is owned by the first healthy ACTIVE
// instance clockwise, so the keys of an instance whose heartbeat timed out
// (or that is LEAVING) go to the next one at once; Shape tells the three
// rings apart (#17).
func TestOwnerPassesUnhealthy(t *testing.T) {
	now := time.Now()
	build := func(bState ring.InstanceState, bBeat time.Time) *RoleRing {
		d := ring.NewDesc()
		a := d.AddIngester("a", "a:1", "", []uint32{100}, ring.ACTIVE, now, false, time.Time{}, nil)
		a.Timestamp = now.Unix()
		d.Ingesters["a"] = a
		b := d.AddIngester("b", "b:1", "", []uint32{200}, bState, now, false, time.Time{}, nil)
		b.Timestamp = bBeat.Unix()
		d.Ingesters["b"] = b
		return staticRing(t, d, 10*time.Second)
	}
	cases := []struct {
		name     string
		state    ring.InstanceState
		beat     time.Time
		owner150 string // of a key between a's and b's token
		owner50  string
		owner250 string
	}{
		{"both healthy", ring.ACTIVE, now, "b", "a", "a"},
		{"b's heartbeat timed out", ring.ACTIVE, now.Add(-time.Minute), "a", "a", "a"},
		{"b leaving", ring.LEAVING, now, "a", "a", "a"},
	}
	shapes := map[uint64]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := build(tc.state, tc.beat)
			for key, want := range map[uint32]string{150: tc.owner150, 50: tc.owner50, 250: tc.owner250} {
				got, err := r.Owner(key, OwnerOp)
				if err != nil || got.Id != want {
					t.Errorf("owner of %d: %q %v, want %q", key, got.Id, err, want)
				}
			}
			shapes[r.Shape(OwnerOp)] = true
		})
	}
	// The timed-out and the leaving b leave the same healthy set.
	if len(shapes) != 2 {
		t.Errorf("%d shapes for three rings, want 2 (b healthy; b not)", len(shapes))
	}
	if Token("ab", "c") == Token("a", "bc") {
		t.Error("Token does not separate its parts")
	}
}
