package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/tenantcopy"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// untarCopy reads a tenant copy: its files' contents by name.
func untarCopy(t *testing.T, b []byte) map[string]string {
	t.Helper()
	files, err := tenantcopy.ReadArchive(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%v (%.200q)", err, b)
	}
	out := map[string]string{}
	for name, c := range files {
		out[name] = string(c)
	}
	return out
}

// TestTenantCopy is #14's right of access on a real server in token mode:
// a tenant with tokens, rules, a deletion request (made with a token of the
// delete scope), usage and Alertmanager settings in the bucket asks for its
// copy with its own admin token; every part is in it, and no token, hash,
// credential, master key or other tenant's name, nor the audit entry of
// its read across tenants. Tokens without the admin scope or of another
// tenant get none; the offline command writes the same parts.
func TestTenantCopy(t *testing.T) {
	fp := startFluxPulse(t, "-runtime-config.reload-period=100ms")
	fp.cli(t, "tenant", "create", "-tenant", "acme")
	fp.cli(t, "tenant", "create", "-tenant", "globex")
	rw, _ := fp.newToken(t, "-tenant", "acme", "-scopes", "write,read,rules", "-description", "prometheus eu-1")
	deleter, _ := fp.newToken(t, "-tenant", "acme", "-scopes", "delete")
	admin, _ := fp.newToken(t, "-tenant", "acme", "-scopes", "admin")
	fed, _ := fp.newToken(t, "-tenant", "acme", "-scopes", "read", "-tenants", "globex")
	other, _ := fp.newToken(t, "-tenant", "globex", "-scopes", "admin,write")
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	testbin.Eventually(t, 10*time.Second, func() error { // the server has loaded the last token created
		if s, b := fp.do(t, request{"POST", "/api/v1/push", pushBody(t, "loaded"), "application/x-protobuf"}, bearer(other), ""); s != 204 {
			return fmt.Errorf("tokens not loaded yet: %d %s", s, b)
		}
		return nil
	})
	pushMany(t, fp, bearer(rw), "", 10, 3)
	pushMany(t, fp, bearer(other), "", 10, 3)
	group := []byte("name: copy-group\nrules:\n  - record: fp_exp:sum\n    expr: sum(fp_exp)\n")
	if s, b := fp.do(t, request{"POST", "/prometheus/config/v1/rules/ns", group, ""}, bearer(rw), ""); s != http.StatusAccepted {
		t.Fatalf("rule group: %d %s", s, b)
	}
	for tok, want := range map[string]int{rw: 403, deleter: 204, admin: 204} {
		path := "/api/v1/admin/tsdb/delete_series?" + url.Values{"match[]": {`fp_exp{n="00003"}`}}.Encode()
		if s, b := fp.do(t, request{"POST", path, nil, ""}, bearer(tok), ""); s != want {
			t.Fatalf("delete_series with token %s…: %d %s, want %d", tok[:15], s, b, want)
		}
	}
	if s, b := fp.do(t, request{"GET", "/prometheus/api/v1/query?query=count(fp_exp)", nil, ""}, bearer(fed), "acme|globex"); s != 200 || !strings.Contains(b, `"19"`) {
		t.Fatalf("federated query: %d %s", s, b)
	}
	// What the multi-tenant Alertmanager keeps in the bucket.
	raw, err := bucket.NewFilesystem(filepath.Join(fp.dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	enc, _, err := encryption.New(encryption.Config{KeyFile: filepath.Join(fp.dir, encryption.DefaultKeyFileName), KeyCacheTTL: time.Minute}, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	amConfig := "global: {smtp_auth_password: hunter2-secret}\nroute: {receiver: pager}\nreceivers: [{name: pager, slack_configs: [{api_url: 'https://hooks.slack.com/services/XXXsecret'}]}]\n"
	if err := enc.Upload(t.Context(), "acme/alertmanager/config.yaml", strings.NewReader(amConfig)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, token string
		status      int
	}{{"read-write token", rw, 403}, {"delete token", deleter, 403}, {"another tenant's admin", other, 403}} {
		if s, _ := fp.do(t, request{"GET", "/api/v1/admin/tenants/acme/copy", nil, ""}, bearer(tc.token), ""); s != tc.status {
			t.Errorf("copy with a %s: %d, want %d", tc.name, s, tc.status)
		}
	}
	s, body := fp.do(t, request{"GET", "/api/v1/admin/tenants/acme/copy", nil, ""}, bearer(admin), "")
	if s != 200 {
		t.Fatalf("copy: %d %s", s, body)
	}
	checkCopy(t, fp, untarCopy(t, []byte(body)), []string{rw, deleter, admin, fed, other, "hunter2-secret", "XXXsecret"})

	// Offline, once the server has stopped (and written its usage).
	if err := fp.proc.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "acme.tar.gz")
	fp.cli(t, "tenant", "copy", "-tenant", "acme", "-o", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkCopy(t, fp, untarCopy(t, b), nil)
}

// checkCopy checks the parts of acme's copy and greps it for what must not
// be in it: the given secrets, every token hash, the master keys, the
// other tenant's name.
func checkCopy(t *testing.T, fp *fluxPulse, files map[string]string, secrets []string) {
	t.Helper()
	for file, want := range map[string][]string{
		"README.txt":             {"tokens.json", "Not in this copy"},
		"tenant.json":            {`"tenant": "acme"`, `"in_runtime_file": true`, `"max_series"`},
		"tokens.json":            {`"description": "prometheus eu-1"`, `"delete"`, `"federated_tenants": 1`},
		"rule-groups.json":       {`"name": "copy-group"`, "sum(fp_exp)"},
		"alertmanager.json":      {`"receiver": "pager"`, `\u003credacted\u003e`},
		"deletion-requests.json": {`fp_exp{n=\"00003\"}`, `"state": "pending"`},
		"usage.json":             {`"tenant":"acme"`, `"samples_received":30`},
		"audit.json":             {`"action":"deletion.request"`, `"action":"token.create"`},
	} {
		for _, w := range want {
			if !strings.Contains(files[file], w) {
				t.Errorf("%s lacks %s:\n%.2000s", file, w, files[file])
			}
		}
	}
	runtime, _ := os.ReadFile(filepath.Join(fp.dir, "runtime.yaml"))
	keys, _ := os.ReadFile(filepath.Join(fp.dir, encryption.DefaultKeyFileName))
	forbidden := append(append(append([]string{"globex"}, secrets...), regexp.MustCompile(`[0-9a-f]{64}`).FindAllString(string(runtime), -1)...),
		regexp.MustCompile(`[A-Za-z0-9+/=_-]{40,}`).FindAllString(string(keys), -1)...)
	if len(forbidden) < 6 {
		t.Fatalf("found only %d hashes and keys to look for", len(forbidden))
	}
	for name, content := range files {
		for _, f := range forbidden {
			if strings.Contains(content, f) {
				t.Errorf("%s holds %.20q…", name, f)
			}
		}
	}
}
