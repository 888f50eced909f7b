package ruler

import (
	"bytes"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// fakeRing is a ruler ring whose owner and health the test sets.
type fakeRing struct {
	self    string
	owner   string
	healthy map[string]bool
	beat    time.Time
	shape   uint64
}

func (f *fakeRing) Owner(uint32) (string, error) { return f.owner, nil }
func (f *fakeRing) Instance(id string) (bool, bool, time.Time) {
	h, ok := f.healthy[id]
	return ok, h, f.beat
}
func (f *fakeRing) Shape() uint64      { return f.shape }
func (f *fakeRing) InstanceID() string { return f.self }

// TestOwnershipHandover walks one group through the handovers of #17: a
// ruler takes a group from a live ruler only once the ring has been
// unchanged for the stable period, from a dead one (heartbeat timed out)
// at once, and drops a group at once when the ring gives it to another;
// each take starts a quiet time.
func TestOwnershipHandover(t *testing.T) {
	const stable, resend, beatPeriod = 10 * time.Second, time.Minute, 15 * time.Second
	ring := &fakeRing{self: "r1", owner: "r0", healthy: map[string]bool{"r0": true, "r1": true}, shape: 1}
	o := newOwnership(ring, ShardingConfig{HeartbeatPeriod: beatPeriod, StablePeriod: stable, CheckPeriod: time.Second,
		Token: func(string, string, string) uint32 { return 0 }})
	k := groupKey{"t", "ns", "g"}
	o.setKnown("t", []storedGroup{{Namespace: "ns", Group: "g"}})
	t0 := time.Now()
	step := func(at time.Duration, wantOwned bool, what string) ownedGroup {
		t.Helper()
		o.check(t0.Add(at), resend)
		g, ok := o.owns(k)
		if ok != wantOwned {
			t.Fatalf("%s: owned %v, want %v", what, ok, wantOwned)
		}
		return g
	}
	step(0, false, "r0 owns it")
	// r1's token now covers the group (a join): r0 is alive, so r1 waits.
	ring.owner, ring.shape = "r1", 2
	step(time.Second, false, "just after the ring changed")
	step(time.Second+stable-time.Millisecond, false, "before the stable period")
	g := step(time.Second+stable, true, "after the stable period")
	if want := t0.Add(time.Second + stable + resend); !g.quietUntil.Equal(want) {
		t.Errorf("quiet until %s, want %s", g.quietUntil, want)
	}
	// The ring gives it back to r0: dropped at once.
	ring.owner, ring.shape = "r0", 3
	step(20*time.Second, false, "given back")
	// r0's heartbeat times out: taken at once, quiet only until r0's
	// last possible notification plus a resend delay.
	ring.owner, ring.shape, ring.healthy["r0"], ring.beat = "r1", 4, false, t0.Add(19*time.Second)
	g = step(25*time.Second, true, "r0 is dead")
	if want := ring.beat.Add(beatPeriod + time.Second + resend); !g.quietUntil.Equal(want) {
		t.Errorf("quiet until %s, want %s", g.quietUntil, want)
	}
	// The group is deleted: no longer owned.
	o.setKnown("t", nil)
	step(26*time.Second, false, "deleted")
}

func TestStripEvaluator(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"group", "name: g\nevaluator: ruler-1\nrules: []\n", "name: g\nrules: []\n"},
		{"file", "groups:\n  - name: g\n    evaluator: r\n    rules: []\n", "groups:\n  - name: g\n    rules: []\n"},
		{"none", "name: g\nrules: []\n", "name: g\nrules: []\n"},
		{"two documents", "name: g\nevaluator: r\n---\nname: h\n", "name: g\nevaluator: r\n---\nname: h\n"},
		{"not YAML", "{", "{"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := string(stripEvaluator([]byte(tc.in)))
			var a, b any
			_ = yaml.Unmarshal([]byte(got), &a)
			_ = yaml.Unmarshal([]byte(tc.want), &b)
			if got != tc.want && !bytes.Equal(mustYAML(t, a), mustYAML(t, b)) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func mustYAML(t *testing.T, v any) []byte {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzStripEvaluator: any body, no panic; what comes out has no group
// evaluator field left when something was removed.
func FuzzStripEvaluator(f *testing.F) {
	f.Add([]byte("name: g\nevaluator: ruler-1\nrules: []\n"))
	f.Add([]byte("groups:\n  - name: g\n    evaluator: r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		out := stripEvaluator(body)
		if !bytes.Equal(out, body) && bytes.Equal(stripEvaluator(out), out) == false {
			t.Fatalf("stripping twice changes %q again", out)
		}
	})
}
