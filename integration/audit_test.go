package integration

import (
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// TestAuditLogRecordsEveryAction performs every kind of action on a real
// server and its CLI, then checks that each has its entry, that no secret
// and no query text is in the log (targets and details are sealed, #12),
// that `fluxpulse audit show` opens every entry, also those sealed before a
// master key rotation, that `fluxpulse audit verify` passes, and that it
// fails once the log is edited.
func TestAuditLogRecordsEveryAction(t *testing.T) {
	fp := startFluxPulse(t, "-runtime-config.reload-period=100ms")
	fp.cli(t, "tenant", "create", "-tenant", "acme")
	tok, tokID := fp.newToken(t, "-tenant", "acme", "-scopes", "write,read")
	op, opID := fp.newToken(t, "-scopes", "admin") // operator token
	bearer := func(tk string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tk) }
	}

	testbin.Eventually(t, 10*time.Second, func() error {
		if s, b := fp.do(t, request{"POST", "/api/v1/push", pushBody(t, "audited_metric"), "application/x-protobuf"}, bearer(tok), ""); s != 204 {
			return errorf("push: %d %s", s, b)
		}
		return nil
	})
	const query = `sum(audited_metric) by (job)`
	if s, b := fp.do(t, request{"GET", "/prometheus/api/v1/query?query=" + url.QueryEscape(query), nil, ""}, bearer(tok), ""); s != 200 {
		t.Fatalf("query: %d %s", s, b)
	}
	if s, b := fp.do(t, request{"GET", "/prometheus/api/v1/export?match[]=audited_metric", nil, ""}, bearer(tok), ""); s != 200 || !strings.Contains(b, "audited_metric") {
		t.Fatalf("export: %d %s", s, b)
	}
	if s, _ := fp.do(t, request{"GET", "/prometheus/api/v1/labels", nil, ""}, bearer("fp_0123456789ab_"+strings.Repeat("A", 43)), ""); s != 401 {
		t.Fatalf("bad token: %d", s)
	}
	// A limit changed by editing the runtime file.
	rt := filepath.Join(fp.dir, "runtime.yaml")
	editRuntime(t, rt, func(f *runtimeconfig.File) error {
		return f.Tenants["acme"].Limits.Encode(map[string]int{"max_series": 1234})
	})
	logPath := filepath.Join(fp.dir, "audit", "audit.log")
	testbin.Eventually(t, 10*time.Second, func() error { // the server reloads the file
		entries, err := audit.ReadEntries(logPath)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Action == "limits.change" && e.Tenant == "acme" {
				return nil
			}
		}
		return errorf("no limits.change entry yet")
	})
	fp.cli(t, "keys", "rotate-master")
	if s, b := fp.do(t, request{"GET", "/api/v1/admin/usage?format=csv", nil, ""}, bearer(op), ""); s != 200 || !strings.Contains(b, "acme") {
		t.Fatalf("usage report: %d %s", s, b)
	}
	fp.cli(t, "token", "revoke", "-id", tokID)
	if s, b := fp.do(t, request{"DELETE", "/api/v1/admin/tenants/acme", nil, ""}, bearer(op), "acme"); s != 202 {
		t.Fatalf("delete tenant: %d %s", s, b)
	}
	if err := fp.proc.Stop(30 * time.Second); err != nil { // writes the pending push summaries
		t.Fatal(err)
	}

	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{tok, op, strings.SplitN(tok, "_", 3)[2]} {
		if strings.Contains(string(raw), secret) {
			t.Fatal("the audit log contains a token")
		}
	}
	for _, clear := range []string{"audited_metric", "/prometheus/api/v1", `"target"`} {
		if strings.Contains(string(raw), clear) {
			t.Errorf("the audit log holds %q in clear", clear)
		}
	}
	var entries []audit.Entry
	for _, line := range strings.Split(strings.TrimSpace(fp.cli(t, "audit", "show")), "\n") {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit show printed %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	want := []struct {
		action, actor, tenant, target string
	}{
		{"tenant.create", "cli:", "acme", "acme"},
		{"token.create", "cli:", "acme", tokID},
		{"token.create", "cli:", "*", opID},
		{"push.summary", tokID, "acme", ""},
		{"query", tokID, "acme", query},
		{"export", tokID, "acme", ""},
		{"auth.failure", "", "", "GET /prometheus/api/v1/labels"},
		{"limits.change", "runtime-file", "acme", "acme"},
		{"keys.rotate-master", "cli:", "", ""},
		{"token.revoke", "cli:", "acme", tokID},
		{"tenant.delete", opID, "acme", ""},
	}
	for _, w := range want {
		found := false
		for _, e := range entries {
			if e.Action == w.action && strings.HasPrefix(e.Actor, w.actor) && (w.tenant == "" || e.Tenant == w.tenant) &&
				(w.target == "" || e.Target == w.target) {
				found = true
				if w.action == "query" && e.Details["result_bytes"] == nil {
					t.Errorf("query entry without its result size: %+v", e)
				}
				if w.action == "push.summary" && e.Details["samples"] == nil {
					t.Errorf("push summary without counts: %+v", e)
				}
			}
		}
		if !found {
			t.Errorf("no %s entry by %s for tenant %q target %q", w.action, w.actor, w.tenant, w.target)
		}
	}
	if t.Failed() {
		for _, e := range entries {
			b, _ := json.Marshal(e)
			t.Log(string(b))
		}
	}

	verify := func() (string, error) {
		out, err := exec.Command(fp.bin, "audit", "verify", "-data.dir", fp.dir).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("verify of an untouched log: %v %s", err, out)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	for i, l := range lines {
		if strings.Contains(l, `"tenant.create"`) && strings.Contains(l, `"acme"`) {
			lines[i] = strings.Replace(l, `"acme"`, `"evil"`, 1)
			break
		}
	}
	if err := os.WriteFile(logPath, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil || !strings.Contains(out, "edited") {
		t.Fatalf("verify of an edited log: %v %s", err, out)
	}
}

// editRuntime edits the runtime file in place, as an operator would.
func editRuntime(t *testing.T, path string, edit func(*runtimeconfig.File) error) {
	t.Helper()
	var lim limits.Limits
	lim.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	if _, _, err := runtimeconfig.Edit(path, lim, edit); err != nil {
		t.Fatal(err)
	}
}
