package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// authed sends a request with a bearer token and returns the status and
// body.
func authed(t testing.TB, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte: // a remote-write body
		rd, ctype = bytes.NewReader(b), "application/x-protobuf"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ctype)
	if ctype != "application/json" {
		req.Header.Set("Content-Encoding", "snappy")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// cli runs a fluxpulse command and returns its standard output.
func (c *cluster) cli(args ...string) string {
	c.t.Helper()
	out, err := exec.Command(c.bin, args...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		c.t.Fatalf("fluxpulse %s: %s\n%s", strings.Join(args, " "), msg, out)
	}
	return string(out)
}

// waitAll polls until check passes on every node, or fails the test after
// within; it returns how long that took.
func waitAll(t *testing.T, nodes []*node, within time.Duration, what string, check func(n *node) (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for _, n := range nodes {
		for {
			ok, got := check(n)
			if ok {
				break
			}
			if time.Since(start) > within {
				t.Fatalf("%s: not on %s after %v: %s", what, n.name, within, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// TestClusterRuntimeConfigInBucket runs a cluster whose runtime
// configuration lives in the bucket (#17): an operator token created with
// the CLI on no server's machine reaches every process; a tenant and its
// token created through one process's admin API, and the token's
// revocation through another's, take effect on every distributor and
// querier within the reload period; concurrent edits through two processes
// lose nothing; the CLI talks to the admin API with -url; a limit set
// through one process applies on every distributor.
func TestClusterRuntimeConfigInBucket(t *testing.T) {
	const reload = 2 * time.Second
	// The measure allows the poll's own delays (100ms, a request per node)
	// on top of the reload period.
	const within = reload + 3*time.Second
	c := startCluster(t, options{ingesters: 1, distributors: 2, queriers: 2, args: []string{
		"-auth.mode=token", "-runtime-config.backend=bucket", "-runtime-config.reload-period=" + reload.String(),
		"-ingester.ring.replication-factor=1"}})
	api := append(append([]*node{}, c.distributors...), c.queriers...)
	bucketFlags := []string{"-runtime-config.backend=bucket", "-blocks-storage.filesystem.dir=" + filepath.Join(c.shared, "bucket"),
		"-encryption.key-file=" + filepath.Join(c.shared, "master-keys.json"), "-data.dir=" + t.TempDir()}
	op := tokenRE.FindString(c.cli(append([]string{"token", "create", "-scopes", "admin,read,write"}, bucketFlags...)...))
	if op == "" {
		t.Fatal("token create printed no token")
	}
	took := waitAll(t, api, within, "operator token", func(n *node) (bool, string) {
		s, b := authed(t, "GET", n.url()+"/api/v1/admin/tenants", op, nil)
		return s == 200, fmt.Sprintf("%d %s", s, b)
	})
	t.Logf("operator token created with the CLI accepted everywhere after %v", took)

	if s, b := authed(t, "POST", c.distributors[0].url()+"/api/v1/admin/tenants", op, map[string]any{"tenant": "acme", "limits": map[string]any{"max_series": 1000}}); s != 201 {
		t.Fatalf("create tenant: %d %s", s, b)
	}
	if s, b := authed(t, "POST", c.distributors[0].url()+"/api/v1/admin/tenants", op, map[string]any{"tenant": "acme"}); s != 409 {
		t.Fatalf("create tenant twice: %d %s, want 409", s, b)
	}
	s, b := authed(t, "POST", c.queriers[1].url()+"/api/v1/admin/tokens", op, map[string]any{"tenant": "acme", "scopes": []string{"write", "read"}})
	var created struct {
		Data struct{ ID, Token string } `json:"data"`
	}
	if err := json.Unmarshal(b, &created); s != 201 || err != nil || created.Data.Token == "" {
		t.Fatalf("create token: %d %s", s, b)
	}
	tok := created.Data.Token
	took = waitAll(t, api, within, "new tenant and token", func(n *node) (bool, string) {
		path, body := "/api/v1/push", any(upBody(t, n.name))
		if n.role == "querier" {
			path, body = "/prometheus/api/v1/labels", nil
		}
		method := map[bool]string{true: "POST", false: "GET"}[body != nil]
		s, b := authed(t, method, n.url()+path, tok, body)
		return s == 204 || s == 200, fmt.Sprintf("%d %s", s, b)
	})
	t.Logf("tenant and token created on two processes took effect everywhere after %v (reload period %v)", took, reload)
	checkConcurrentAdmin(t, c, op)

	if s, b := authed(t, "DELETE", c.distributors[1].url()+"/api/v1/admin/tokens/"+created.Data.ID, op, nil); s != 200 {
		t.Fatalf("revoke: %d %s", s, b)
	}
	took = waitAll(t, api, within, "revocation", func(n *node) (bool, string) {
		s, b := authed(t, "GET", n.url()+"/prometheus/api/v1/labels", tok, nil)
		if n.role == "distributor" {
			s, b = authed(t, "POST", n.url()+"/api/v1/push", tok, upBody(t, n.name))
		}
		return s == 401, fmt.Sprintf("%d %s", s, b)
	})
	t.Logf("revoked token refused everywhere after %v", took)
	if took > within {
		t.Errorf("revocation took %v, more than the reload period %v and the poll's slack", took, reload)
	}

	out := c.cli("tenant", "list", "-url", c.queriers[0].url(), "-token", op)
	if !strings.Contains(out, "acme") || strings.Contains(out, created.Data.ID) {
		t.Errorf("tenant list through the API: want acme without the revoked token:\n%s", out)
	}
	checkCLIAndLimits(t, c, op, within)
}

// checkCLIAndLimits creates a tenant and its token with the CLI through
// the admin API of two processes, then lowers a limit of the tenant
// through a third: every distributor applies it within the reload period.
func checkCLIAndLimits(t *testing.T, c *cluster, op string, within time.Duration) {
	c.cli("tenant", "create", "-tenant", "beta", "-url", c.distributors[1].url(), "-token", op)
	tok := tokenRE.FindString(c.cli("token", "create", "-tenant", "beta", "-scopes", "write", "-url", c.queriers[0].url(), "-token", op))
	if tok == "" {
		t.Fatal("token create -url printed no token")
	}
	waitAll(t, c.distributors, within, "token created with the CLI", func(n *node) (bool, string) {
		s, b := authed(t, "POST", n.url()+"/api/v1/push", tok, upBody(t, n.name))
		return s == 204, fmt.Sprintf("%d %s", s, b)
	})
	// upBody's series has 3 labels.
	if s, b := authed(t, "PUT", c.queriers[1].url()+"/api/v1/admin/tenants/beta/limits", op, map[string]any{"max_label_names_per_series": 2}); s != 200 {
		t.Fatalf("set limits: %d %s", s, b)
	}
	took := waitAll(t, c.distributors, within, "lowered limit", func(n *node) (bool, string) {
		s, b := authed(t, "POST", n.url()+"/api/v1/push", tok, upBody(t, n.name))
		return s == 400 && strings.Contains(string(b), "max_label_names_per_series"), fmt.Sprintf("%d %s", s, b)
	})
	t.Logf("a limit set through one process applied on every distributor after %v", took)
}

// checkConcurrentAdmin creates 20 tenants through two processes at once:
// none is lost.
func checkConcurrentAdmin(t *testing.T, c *cluster, op string) {
	var wg sync.WaitGroup
	for k := range 20 {
		n := []*node{c.distributors[0], c.queriers[1]}[k%2]
		wg.Go(func() {
			if s, b := authed(t, "POST", n.url()+"/api/v1/admin/tenants", op, map[string]any{"tenant": fmt.Sprintf("t%02d", k)}); s != 201 {
				t.Errorf("create t%02d on %s: %d %s", k, n.name, s, b)
			}
		})
	}
	wg.Wait()
	s, b := authed(t, "GET", c.queriers[0].url()+"/api/v1/admin/tenants", op, nil)
	var list struct {
		Data struct {
			Tenants []struct{ Tenant string } `json:"tenants"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &list); s != 200 || err != nil {
		t.Fatalf("list: %d %s", s, b)
	}
	// querier-0 may not have reloaded yet: it applies what it read, so ask
	// again until the reload period passed.
	deadline := time.Now().Add(10 * time.Second)
	for len(list.Data.Tenants) < 21 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		_, b = authed(t, "GET", c.queriers[0].url()+"/api/v1/admin/tenants", op, nil)
		_ = json.Unmarshal(b, &list)
	}
	if len(list.Data.Tenants) != 21 {
		t.Fatalf("after 20 concurrent creations through two processes: %d tenants, want 21 (acme too)", len(list.Data.Tenants))
	}
}

// TestAdminAPITenantsAndTokens runs the tenant and token admin API in
// -target=all with the runtime configuration in the file and in the
// bucket (#17): an operator token from the CLI creates a tenant and a
// token, which push at once on the process that made them, and the
// revoked token is refused at once; a tenant's admin token may not use
// these endpoints.
func TestAdminAPITenantsAndTokens(t *testing.T) {
	for _, backend := range []string{"file", "bucket"} {
		t.Run(backend, func(t *testing.T) {
			flags := []string{"-runtime-config.backend=" + backend}
			f := startFluxPulse(t, append(flags, "-runtime-config.reload-period=500ms")...)
			op, _ := f.newToken(t, append(flags, "-scopes", "admin")...)
			waitAll(t, []*node{{name: "all", http: f.addr}}, 10*time.Second, "operator token", func(n *node) (bool, string) {
				s, b := authed(t, "GET", n.url()+"/api/v1/admin/tenants", op, nil)
				return s == 200, fmt.Sprintf("%d %s", s, b)
			})
			if s, b := authed(t, "POST", f.url()+"/api/v1/admin/tenants", op, map[string]any{"tenant": "acme", "limits": map[string]any{"max_seriez": 5}}); s != 400 || !strings.Contains(string(b), "max_seriez") {
				t.Fatalf("unknown limit: %d %s, want 400 naming it", s, b)
			}
			if s, b := authed(t, "POST", f.url()+"/api/v1/admin/tenants", op, map[string]any{"tenant": "acme"}); s != 201 {
				t.Fatalf("create tenant: %d %s", s, b)
			}
			s, b := authed(t, "POST", f.url()+"/api/v1/admin/tokens", op, map[string]any{"tenant": "acme", "scopes": []string{"write", "admin"}})
			var created struct {
				Data struct{ ID, Token string } `json:"data"`
			}
			if err := json.Unmarshal(b, &created); s != 201 || err != nil {
				t.Fatalf("create token: %d %s", s, b)
			}
			if s, b := authed(t, "POST", f.url()+"/api/v1/push", created.Data.Token, upBody(t, "a")); s != 204 {
				t.Fatalf("push with the new token: %d %s", s, b)
			}
			if s, _ := authed(t, "POST", f.url()+"/api/v1/admin/tenants", created.Data.Token, map[string]any{"tenant": "evil"}); s != 403 {
				t.Fatalf("a tenant's admin token created a tenant: %d, want 403", s)
			}
			if s, b := authed(t, "DELETE", f.url()+"/api/v1/admin/tokens/"+created.Data.ID, op, nil); s != 200 {
				t.Fatalf("revoke: %d %s", s, b)
			}
			if s, _ := authed(t, "POST", f.url()+"/api/v1/push", created.Data.Token, upBody(t, "a")); s != 401 {
				t.Fatalf("push with the revoked token: %d, want 401", s)
			}
			if s, _ := authed(t, "DELETE", f.url()+"/api/v1/admin/tokens/"+created.Data.ID, op, nil); s != 404 {
				t.Fatalf("revoke twice: %d, want 404", s)
			}
		})
	}
}
