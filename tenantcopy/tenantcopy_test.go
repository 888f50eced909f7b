package tenantcopy

import (
	"bytes"
	"context"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/usage"
)

// TestCopy is #14's copy of a tenant from real parts: a runtime file with
// tokens (one that may also read another tenant), rule groups, a deletion
// request in the encrypted bucket, Alertmanager settings with credentials,
// usage rows and a sealed audit log. Each file holds what it should, and
// the archive holds no token, hash, credential or other tenant's name.
func TestCopy(t *testing.T) {
	dir := t.TempDir()
	enc := blockstoretest.NewBuckets(t).Enc
	rt, lim, secrets := testRuntime(t)
	store := deletion.NewStore(enc)
	req, err := deletion.NewRequest(deletion.Params{Tenant: "acme", Actor: "tok", Selectors: []string{`{host="leaky"}`}}, lim, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Add(t.Context(), req, 0); err != nil {
		t.Fatal(err)
	}
	settings := "global:\n  smtp_auth_password: hunter2-secret\n  slack_api_url: https://hooks.slack.com/services/T0/B0/XXXsecret\nroute: {receiver: team}\nreceivers:\n  - name: team\n    webhook_configs: [{url: 'http://user:pass-secret@hook'}]\n"
	for name, content := range map[string]string{"acme/alertmanager/config.yaml": settings, "acme/alertmanager/nflog": "\x00\x01state", "globex/alertmanager/config.yaml": "route: {receiver: globex-only}\n"} {
		if err := enc.Upload(t.Context(), name, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	secrets = append(secrets, "hunter2-secret", "XXXsecret", "pass-secret", "globex")

	keys, auditFile := testAudit(t, dir, req.ID, req.Selectors)
	src := Sources{Runtime: rt, Limits: limits.NewOverrides(rt.Defaults).Limits, Bucket: enc, Deletions: store.List,
		Rules: func(context.Context, string) ([]RuleGroup, error) {
			return []RuleGroup{{Namespace: "ns", Name: "g1", YAML: "name: g1\nrules: []\n"}}, nil
		},
		Usage: func(_, _ time.Time, tenants []string) ([]usage.Row, error) {
			return []usage.Row{{Hour: time.Now().Truncate(time.Hour), Tenant: tenants[0], Usage: usage.Usage{Queries: 7}}}, nil
		},
		AuditFile: auditFile, AuditKeys: keys}
	src.Limits = func(string) limits.Limits { return rt.Limits["acme"] }
	var out bytes.Buffer
	if err := Write(t.Context(), &out, "acme", src); err != nil {
		t.Fatal(err)
	}
	files, err := ReadArchive(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ file, text string }{
		{"README.txt", "tokens.json"},
		{"tenant.json", `"max_series": 1234`},
		{"tenant.json", `"own_limits": {`},
		{"tokens.json", `"description": "prometheus eu-1"`},
		{"tokens.json", `"federated_tenants": 1`},
		{"rule-groups.json", `"name": "g1"`},
		{"alertmanager.json", `"receiver": "team"`},
		{"alertmanager.json", `"smtp_auth_password": "\u003credacted\u003e"`},
		{"alertmanager.json", `"note": "not a settings file (state): content not included"`},
		{"deletion-requests.json", req.ID},
		{"usage.json", `"queries":7`},
		{"audit.json", `"action":"deletion.request","target":"` + req.ID},
	} {
		if !bytes.Contains(files[want.file], []byte(want.text)) {
			t.Errorf("%s lacks %s:\n%s", want.file, want.text, files[want.file])
		}
	}
	if n := strings.Count(string(files["audit.json"]), `"seq"`); n != 1 {
		t.Errorf("audit.json holds %d entries, want the one of acme alone:\n%s", n, files["audit.json"])
	}
	all := out.String()
	for _, c := range files {
		all += string(c)
	}
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("the copy holds %q", s)
		}
	}
}

// testRuntime is a runtime file with tenants acme (its own limits, two
// tokens, one of which may also read globex) and globex, and the secrets
// the tokens and their hashes are.
func testRuntime(t *testing.T) (*runtimeconfig.Config, limits.Limits, []string) {
	t.Helper()
	var lim limits.Limits
	lim.RegisterFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	f := &runtimeconfig.File{Tenants: map[string]*runtimeconfig.Tenant{}}
	var secrets []string
	for _, spec := range []runtimeconfig.TokenSpec{
		{Tenant: "acme", Scopes: []tenantauth.Scope{tenantauth.ScopeWrite, tenantauth.ScopeRead}, Description: "prometheus eu-1"},
		{Tenant: "acme", Scopes: []tenantauth.Scope{tenantauth.ScopeRead}, Tenants: []string{"globex"}, TTL: time.Hour},
		{Tenant: "globex", Scopes: []tenantauth.Scope{tenantauth.ScopeAdmin}},
	} {
		if _, ok := f.Tenants[spec.Tenant]; !ok {
			if err := f.AddTenant(spec.Tenant); err != nil {
				t.Fatal(err)
			}
		}
		tok, entry, err := f.AddToken(spec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok, entry.Hash, strings.TrimPrefix(entry.Hash, "sha256:"))
	}
	var own yaml.Node
	if err := yaml.Unmarshal([]byte("max_series: 1234\n"), &own); err != nil {
		t.Fatal(err)
	}
	f.Tenants["acme"].Limits = *own.Content[0]
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtimeconfig.Parse(b, lim)
	if err != nil {
		t.Fatal(err)
	}
	return rt, lim, secrets
}

// testAudit writes a sealed audit log with an entry of acme, one of
// globex and one of a read across both, and returns its keys and path.
func testAudit(t *testing.T, dir, reqID string, selectors []string) (audit.Keys, string) {
	t.Helper()
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "audit-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := kf.Derive(audit.KeyPurpose)
	auditFile := filepath.Join(dir, "audit.log")
	l, err := audit.OpenWithOptions(auditFile, audit.Options{Keys: keys}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []audit.Entry{
		{Actor: "tok", Tenant: "acme", Action: deletion.ActionRequest, Target: reqID, Outcome: "success", Details: map[string]any{"selectors": selectors}},
		{Actor: "tok", Tenant: "globex", Action: "query", Target: "up", Outcome: "success"},
		{Actor: "tok", Tenant: "acme|globex", Action: "query", Target: `up{__tenant_id__="globex"}`, Outcome: "success"},
	} {
		l.Log(e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return keys, auditFile
}
