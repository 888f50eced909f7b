package cluster

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
)

// freePort is a loopback port free now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testNode is a Node on loopback joining the given memberlist ports, with
// one ruler-like role ring registering at addr (empty: reading only).
func testNode(t *testing.T, port int, join []int, addr string) (*Node, *RoleRing, prometheus.Gatherer) {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("t", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	var rc RoleRingConfig
	rc.RegisterFlagsWithPrefix(fs, "ruler.ring", "ruler", 1)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg.Memberlist.TCPTransport.BindAddrs = []string{"127.0.0.1"}
	cfg.Memberlist.TCPTransport.BindPort = port
	cfg.Memberlist.GossipInterval = 50 * time.Millisecond
	cfg.Memberlist.PushPullInterval = 200 * time.Millisecond
	for _, p := range join {
		cfg.Memberlist.JoinMembers = append(cfg.Memberlist.JoinMembers, "127.0.0.1:"+strconv.Itoa(p))
	}
	rc.InstanceID, rc.HeartbeatPeriod, rc.HeartbeatTimeout = addr, 100*time.Millisecond, 5*time.Second
	reg := prometheus.NewRegistry()
	n, err := New(cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := n.AddRing("ruler", "ruler.ring", rc, addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return n, rr, reg
}

// TestRoleRing runs two processes registering in a role ring and one only
// reading it, all in one memberlist cluster: every one sees both members
// ACTIVE, fluxpulse_ring_members counts them under the ring's name, and
// every key is owned by exactly one of the two (#17).
func TestRoleRing(t *testing.T) {
	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	_, a, _ := testNode(t, p1, []int{p2}, "127.0.0.1:1001")
	_, b, _ := testNode(t, p2, []int{p1}, "127.0.0.1:1002")
	_, reader, reg := testNode(t, p3, []int{p1}, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := members(t, reg, "ruler", "ACTIVE")
		if n == 2 && a.Active() && b.Active() && reader.Ring().InstancesCount() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader sees %v ACTIVE rulers (a active %v, b active %v), want 2", n, a.Active(), b.Active())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if reader.Active() || reader.InstanceID() != "" {
		t.Fatal("a reading process counts as a member")
	}
	// Each member learns of the other by gossip, in its own time: until
	// both views hold both, a member may own keys the other owns too.
	var owners map[string]int
	for {
		owners = map[string]int{}
		wide := 0 // keys whose set has more than one owner
		for k := range 1000 {
			key := uint32(k) * 4294967
			for _, r := range []*RoleRing{a, b} {
				owns, set, err := r.Owns(key, ring.Write)
				if err != nil {
					t.Fatal(err)
				}
				if len(set.Instances) != 1 {
					wide++
				}
				if owns {
					owners[r.InstanceID()]++
				}
			}
		}
		if wide == 0 && owners["127.0.0.1:1001"]+owners["127.0.0.1:1002"] == 1000 && owners["127.0.0.1:1001"] > 0 && owners["127.0.0.1:1002"] > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("owners of 1000 keys: %v, and %d sets of more than one owner; want each key owned once, by both", owners, wide)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// members returns fluxpulse_ring_members{name, state} as gathered.
func members(t *testing.T, g prometheus.Gatherer, name, state string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fluxpulse_ring_members" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lbl := map[string]string{}
			for _, l := range m.GetLabel() {
				lbl[l.GetName()] = l.GetValue()
			}
			if lbl["name"] == name && lbl["state"] == state {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
