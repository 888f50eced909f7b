package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterAuditSegments runs a cluster of three processes (ingester,
// distributor, querier) that ship their audit chains in segments to the
// bucket (#17): `fluxpulse audit verify -bucket` passes for all three, and
// fails naming the segment after one byte of it is changed, and after a
// segment is deleted.
func TestClusterAuditSegments(t *testing.T) {
	c := startCluster(t, options{ingesters: 1, distributors: 1, queriers: 1, args: []string{
		"-audit.segment-period=500ms", "-ingester.ring.replication-factor=1", "-runtime-config.backend=bucket"}})
	qID, err := os.ReadFile(filepath.Join(c.queriers[0].dir, "instance-id"))
	if err != nil {
		t.Fatal(err)
	}
	segDir := filepath.Join(c.shared, "bucket", "@fluxpulse", "audit", strings.TrimSpace(string(qID)), "segments")
	// Two rounds of reads, each shipped before the next, give the querier
	// two segments or more.
	for round := range 2 {
		for range 3 {
			if s, b := post(t, c.distributors[0].url(), "acme", "application/x-protobuf", upBody(t, "a")); s != 204 {
				t.Fatalf("push: %d %s", s, b)
			}
			if s, b := api(t, c.queriers[0].url(), "/prometheus/api/v1/query", map[string][]string{"query": {"up"}}, "acme"); s != 200 {
				t.Fatalf("query: %d %s", s, b)
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			des, _ := os.ReadDir(segDir)
			if len(des) > round {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the querier shipped %d segments to %s after 20s", round, len(des), segDir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, n := range c.nodes {
		c.stop(n)
	}
	verify := func() (string, error) {
		out, err := exec.Command(c.bin, "audit", "verify", "-bucket", "-data.dir", t.TempDir(),
			"-blocks-storage.filesystem.dir="+filepath.Join(c.shared, "bucket"), "-encryption.key-file="+filepath.Join(c.shared, "master-keys.json")).CombinedOutput()
		return string(out), err
	}
	out, err := verify()
	if err != nil || strings.Count(out, ": OK,") != 3 {
		t.Fatalf("audit verify -bucket over 3 processes: %v\n%s", err, out)
	}
	t.Logf("intact:\n%s", out)
	des, _ := os.ReadDir(segDir)
	first := filepath.Join(segDir, des[0].Name())
	orig, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	changed := append([]byte(nil), orig...)
	changed[len(changed)/2] ^= 0x20
	for _, tc := range []struct {
		name   string
		damage func() error
	}{
		{"byte changed", func() error { return os.WriteFile(first, changed, 0o600) }},
		{"deleted", func() error { return os.Remove(first) }},
	} {
		if err := tc.damage(); err != nil {
			t.Fatal(err)
		}
		out, err := verify()
		if err == nil || !strings.Contains(out, "FAILED: segment ") || !strings.Contains(out, des[0].Name()) || strings.Count(out, ": OK,") != 2 {
			t.Fatalf("%s: audit verify -bucket did not fail naming %s: %v\n%s", tc.name, des[0].Name(), err, out)
		}
		t.Logf("%s:\n%s", tc.name, out)
		if err := os.WriteFile(first, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
