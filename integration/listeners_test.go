package integration

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// TestOperatorSurfacesOnInternalListener checks that /metrics (every
// tenant's usage), /config (paths, access-key IDs) and profiles are served
// only on the operator listener, never on the public one, whatever token
// comes with the request; /ready answers on both (#12, item 7).
func TestOperatorSurfacesOnInternalListener(t *testing.T) {
	fp := startFluxPulse(t)
	admin := tokenRE.FindString(fp.proc.Output()) // tenant-1's first-start token has every scope
	if admin == "" {
		t.Fatal("no first-start token in the output")
	}
	get := func(base, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/metrics", "/config", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if status, body := get(fp.url(), path); status != http.StatusNotFound {
			t.Errorf("public %s with a tenant's admin token: %d, want 404\n%.200s", path, status, body)
		}
	}
	cases := []struct{ path, want string }{
		{"/metrics", "fluxpulse_"},
		{"/config", "-data.dir="},
		{"/debug/pprof/", "goroutine"},
		{"/ready", "ready"},
	}
	for _, c := range cases {
		if status, body := get(fp.internalURL(), c.path); status != http.StatusOK || !strings.Contains(body, c.want) {
			t.Errorf("internal %s: %d, want 200 with %q\n%.200s", c.path, status, c.want, body)
		}
	}
	if status, body := get(fp.url(), "/ready"); status != http.StatusOK {
		t.Errorf("public /ready: %d %s", status, body)
	}
}

// TestHelpExitsZero checks that -help of the server and of every command
// prints the usage and exits 0, as a help request is not a failure (#12,
// item 9).
func TestHelpExitsZero(t *testing.T) {
	bin := testbin.FluxPulse(t, "fluxpulse")
	for _, args := range [][]string{{"-help"}, {"tenant", "create", "-help"}, {"token", "create", "-h"}, {"keys", "list", "-help"},
		{"blocks", "-help"}, {"usage", "report", "-help"}, {"audit", "verify", "-help"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("fluxpulse %v: %v, want exit 0\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "-") {
			t.Errorf("fluxpulse %v printed no usage: %q", args, out)
		}
	}
}
