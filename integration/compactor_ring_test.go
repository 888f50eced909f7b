package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/bucket"
	fpcluster "github.com/fluxpulse/fluxpulse/cluster"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// compactorTokens are the one token of each compactor: compactor-0 owns
// the tokens up to the middle of the ring, compactor-1 the rest.
var compactorTokens = []uint32{math.MaxUint32 / 2, math.MaxUint32}

// ringTenants picks n tenant names owned by compactor-0 and n by
// compactor-1, those of compactor-1 sorting first (a compactor goes over
// tenants in order, so compactor-0, alone at first, starts on one that
// compactor-1 will own).
func ringTenants(n int) (first, second []string) {
	for k := 0; len(first) < n || len(second) < n; k++ {
		if a := fmt.Sprintf("a%02d", k); len(second) < n && fpcluster.Token(a) > compactorTokens[0] {
			second = append(second, a)
		}
		if z := fmt.Sprintf("z%02d", k); len(first) < n && fpcluster.Token(z) <= compactorTokens[0] {
			first = append(first, z)
		}
	}
	return first, second
}

// writeTokens gives a compactor's data directory its ring token.
func writeTokens(t *testing.T, n *node, token uint32) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.dir, "compactor-ring-tokens"), fmt.Appendf(nil, `{"tokens":[%d]}`, token), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClusterCompactorRing: two compactors, four tenants. Compactor-0
// starts alone, each tenant pass slowed down by 6s holding the tenant's
// lease (FLUXPULSE_TEST_COMPACTION_DELAY); compactor-1 joins while
// compactor-0 is in the middle of a tenant that the ring now gives to
// compactor-1, which must wait for compactor-0's lease; compactor-1 is
// then killed with SIGKILL in the middle of a pass and compactor-0 takes
// its tenants once its heartbeat and its lease have timed out. Every
// tenant ends compacted and no tenant's passes by the two overlap (#17).
func TestClusterCompactorRing(t *testing.T) {
	args := []string{"-ingester.ring.replication-factor=1", "-compactor.block-ranges=1m,4m", "-compactor.compaction-interval=500ms",
		"-compactor.deletion-delay=1s", "-compactor.ring.heartbeat-period=500ms", "-compactor.ring.heartbeat-timeout=3s",
		"-compactor.ring.num-tokens=1", "-compactor.tenant-lease-duration=4s"}
	c := startCluster(t, options{ingesters: 1, args: args, env: []string{"FLUXPULSE_TEST_COMPACTION_DELAY=6s"}})
	owned0, owned1 := ringTenants(2)
	tenants := slices.Concat(owned1, owned0)
	enc := shipCopies(t, c, tenants)

	c0 := c.newNode("compactor", 0)
	c1 := c.newNode("compactor", 1)
	writeTokens(t, c0, compactorTokens[0])
	writeTokens(t, c1, compactorTokens[1])
	for _, n := range []*node{c0, c1} {
		c.setArgs(n, len(c.nodes))
		c.nodes = append(c.nodes, n)
		c.compactors = append(c.compactors, n)
	}
	c.restart(c0)
	waitLog(t, c0, `msg="tenant pass started" component=compactor tenant=`+owned1[0])
	c.restart(c1)
	// compactor-1 owns the tenant now but compactor-0 is still at it.
	waitLog(t, c1, `msg="tenant skipped this pass" component=compactor tenant=`+owned1[0])
	waitLog(t, c1, `msg="tenant pass started" component=compactor tenant=`+owned1[0])
	c1.kill9()
	killed := time.Now()
	c1out := c1.proc.Output()
	var spans map[string][]passSpan
	testbin.Eventually(t, 3*time.Minute, func() error {
		for _, tn := range tenants {
			if live := liveBlocks(t, enc, tn); live != 1 {
				return fmt.Errorf("tenant %s has %d live blocks, want 1", tn, live)
			}
		}
		// compactor-0 takes compactor-1's tenants (whose leases it left
		// behind) after the kill.
		spans = passSpans(t, map[string]string{"compactor-0": c0.proc.Output(), "compactor-1": c1out}, killed)
		for _, tn := range owned1 {
			if !slices.ContainsFunc(spans[tn], func(s passSpan) bool { return s.instance == "compactor-0" && s.start.After(killed) }) {
				return fmt.Errorf("tenant %s: no pass by compactor-0 since compactor-1 was killed: %v", tn, spans[tn])
			}
		}
		return nil
	})
	for tn, ss := range spans {
		for i, a := range ss {
			for _, o := range ss[i+1:] {
				if a.instance != o.instance && a.start.Before(o.end) && o.start.Before(a.end) {
					t.Errorf("tenant %s: %s worked %s–%s while %s worked %s–%s", tn, a.instance, a.start.Format(time.StampMilli),
						a.end.Format(time.StampMilli), o.instance, o.start.Format(time.StampMilli), o.end.Format(time.StampMilli))
				}
			}
		}
	}
	t.Logf("passes: %v", spans)
}

// shipCopies ships two copies (as from two ingesters) of 4 minutes of
// samples of each tenant, 8 one-minute blocks: 5 compactions (one pass)
// make them one 4m block.
func shipCopies(t *testing.T, c *cluster, tenants []string) bucket.Bucket {
	t.Helper()
	raw, err := bucket.NewFilesystem(filepath.Join(c.shared, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	enc, _, err := encryption.New(encryption.Config{KeyFile: filepath.Join(c.shared, "master-keys.json"), KeyCacheTTL: time.Minute}, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = enc.Close() })
	end := time.Now().Add(-2 * time.Minute).Truncate(4 * time.Minute)
	for _, tn := range tenants {
		spec := blockstoretest.Spec{Tenant: tn, Series: 5, Minutes: 4, End: end}
		blockstoretest.ShipSpec(t, enc, spec)
		blockstoretest.ShipSpec(t, enc, spec)
	}
	return enc
}

// liveBlocks counts a tenant's blocks without a deletion mark.
func liveBlocks(t *testing.T, enc bucket.Bucket, tenant string) int {
	t.Helper()
	metas, marked, err := blockstore.ListBlocks(context.Background(), enc, tenant)
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, m := range metas {
		if !marked[m.ULID] {
			live++
		}
	}
	return live
}

// waitLog waits until a node's log holds s.
func waitLog(t *testing.T, n *node, s string) {
	t.Helper()
	testbin.Eventually(t, 2*time.Minute, func() error {
		if n.proc.Exited() {
			t.Fatalf("%s exited:\n%s", n.name, n.proc.Output())
		}
		if !strings.Contains(n.proc.Output(), s) {
			return fmt.Errorf("%s has not logged %s", n.name, s)
		}
		return nil
	})
}

type passSpan struct {
	instance   string
	start, end time.Time
}

func (s passSpan) String() string {
	return fmt.Sprintf("%s %s–%s", s.instance, s.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"))
}

var passRE = regexp.MustCompile(`(?m)^time=(\S+) level=INFO msg="tenant pass (started|finished)" component=compactor tenant=(\S+)`)

// passSpans reads the compactors' passes by tenant from their logs; a
// pass that compactor-1 (killed) had not finished ends at killed, one of
// compactor-0 now.
func passSpans(t *testing.T, logs map[string]string, killed time.Time) map[string][]passSpan {
	t.Helper()
	out := map[string][]passSpan{}
	for inst, log := range logs {
		open := map[string]time.Time{}
		for _, m := range passRE.FindAllStringSubmatch(log, -1) {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				t.Fatalf("log time %q: %v", m[1], err)
			}
			if m[2] == "started" {
				open[m[3]] = at
				continue
			}
			out[m[3]] = append(out[m[3]], passSpan{inst, open[m[3]], at})
			delete(open, m[3])
		}
		end := time.Now()
		if inst == "compactor-1" {
			end = killed
		}
		for tn, at := range open {
			out[tn] = append(out[tn], passSpan{inst, at, end})
		}
	}
	return out
}
