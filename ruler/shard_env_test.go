package ruler

import (
	"context"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// parityRing gives groups of even token to r0, odd to r1; both healthy.
type parityRing struct{ self string }

func (p parityRing) Owner(token uint32) (string, error)      { return fmt.Sprintf("r%d", token%2), nil }
func (p parityRing) Instance(string) (bool, bool, time.Time) { return true, true, time.Now() }
func (p parityRing) Shape() uint64                           { return 1 }
func (p parityRing) InstanceID() string                      { return p.self }

// peerOf asks another ruler in process.
type peerOf struct{ other *Ruler }

func (p peerOf) Groups(ctx context.Context, query string) ([][]byte, error) {
	tenant, err := tenantauth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	b, err := p.other.OwnGroups(tenant, query)
	return [][]byte{b}, err
}

func fnvToken(tenant, ns, group string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(tenant + "\x00" + ns + "\x00" + group))
	return h.Sum32()
}

// TestShardedRulersSplitGroups: two rulers over one bucket evaluate ten
// groups between them, each group by its owner alone, and the rules API
// of either lists all ten once with the evaluator the ring names (#17).
func TestShardedRulersSplitGroups(t *testing.T) {
	cfg := testConfig(t)
	cfg.PollInterval = 200 * time.Millisecond
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	envs := []*env{buildEnv(t, cfg, nil, bkt), buildEnv(t, cfg, nil, bkt)}
	for k, e := range envs {
		if err := e.r.SetRing(parityRing{fmt.Sprintf("r%d", k)}, ShardingConfig{HeartbeatPeriod: time.Second,
			StablePeriod: 300 * time.Millisecond, CheckPeriod: 50 * time.Millisecond, Token: fnvToken}); err != nil {
			t.Fatal(err)
		}
		e.r.SetPeers(peerOf{envs[1-k].r})
		e.start()
	}
	for k := range 10 {
		envs[0].post("team", "ns", fmt.Sprintf("name: g%d\ninterval: 200ms\nrules:\n  - record: r%d\n    expr: vector(%d)\n", k, k, k))
	}
	testbin.Eventually(t, 20*time.Second, func() error {
		for k, e := range envs {
			var got struct {
				Groups []struct {
					Name, File, Evaluator string
					Rules                 []struct{ Health string }
				}
			}
			e.promAPI("/prometheus/api/v1/rules", "team", &got)
			if len(got.Groups) != 10 {
				return fmt.Errorf("ruler %d lists %d groups", k, len(got.Groups))
			}
			for _, g := range got.Groups {
				if want := fmt.Sprintf("r%d", fnvToken("team", g.File, g.Name)%2); g.Evaluator != want || g.Rules[0].Health != "ok" {
					return fmt.Errorf("ruler %d: group %s evaluated by %q (health %s), want %s", k, g.Name, g.Evaluator, g.Rules[0].Health, want)
				}
			}
		}
		return nil
	})
	for k, e := range envs {
		if n := len(e.r.groups("team")); n == 0 || n == 10 {
			t.Errorf("ruler %d runs %d of the 10 groups itself, want a share", k, n)
		}
	}
}
