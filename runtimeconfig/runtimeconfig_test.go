package runtimeconfig

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

func flagDefaults() limits.Limits {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	return l
}

func TestParseLimits(t *testing.T) {
	c, err := Parse([]byte(`
defaults:
  ingestion_rate: 500
  query_timeout: 30s
tenants:
  a:
    limits:
      max_series: 7
      out_of_order_time_window: 10m
  b: {}
`), flagDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if c.Defaults.IngestionRate != 500 || c.Defaults.QueryTimeout != 30*time.Second || c.Defaults.MaxLabelValueLength != 2048 {
		t.Fatalf("defaults: %+v", c.Defaults)
	}
	a := c.Limits["a"]
	if a.MaxSeries != 7 || a.OutOfOrderTimeWindow != 10*time.Minute || a.IngestionRate != 500 {
		t.Fatalf("tenant a limits: %+v (want its own over the file's defaults)", a)
	}
	if _, ok := c.Limits["b"]; ok {
		t.Fatal("tenant b has no limits of its own")
	}
	if _, ok := c.Credentials.Tenants["b"]; !ok {
		t.Fatal("tenant b missing")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ name, yaml, msg string }{
		{"unknown top key", "tenantz: {}", "tenantz"},
		{"unknown limit", "tenants: {a: {limits: {max_seriez: 1}}}", `unknown limit "max_seriez"`},
		{"negative limit", "tenants: {a: {limits: {max_series: -1}}}", "must not be negative"},
		{"bad duration", "defaults: {query_timeout: soon}", "soon"},
		{"bad tenant", "tenants: {'a/b': {}}", "tenant ID"},
		{"reserved tenant (#12)", "tenants: {'.fluxpulse-tmp-x': {}}", "reserved"},
		{"bad token", "tenants: {a: {tokens: [{id: x, hash: y, scopes: [read]}]}}", "token ID"},
		{"not yaml", "tenants: [", "decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), flagDefaults())
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.msg)
			}
		})
	}
}

func TestEditRoundTripAndDiff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	_, c1, err := Edit(path, flagDefaults(), func(f *File) error { return f.AddTenant("a") })
	if err != nil {
		t.Fatal(err)
	}
	var token string
	old, c2, err := Edit(path, flagDefaults(), func(f *File) error {
		var err error
		token, _, err = f.AddToken(TokenSpec{Tenant: "a", Scopes: []tenantauth.Scope{tenantauth.ScopeRead}, TTL: time.Hour}, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if old == nil || len(old.Credentials.Tenants["a"]) != 0 || len(c2.Credentials.Tenants["a"]) != 1 {
		t.Fatalf("old %v new %v", old, c2)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), strings.SplitN(token, "_", 3)[2]) {
		t.Fatal("the runtime file holds the token")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("runtime file mode %v, want 0600", st.Mode().Perm())
	}
	id := c2.Credentials.Tenants["a"][0].ID
	if d := Diff(c1, c2); len(d) != 1 || d[0] != (Change{"token.create", "a", id}) {
		t.Fatalf("diff %v", d)
	}
	_, c3, err := Edit(path, flagDefaults(), func(f *File) error { _, err := f.RevokeToken(id); return err })
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(c2, c3); len(d) != 1 || d[0].Action != "token.revoke" {
		t.Fatalf("diff %v", d)
	}
	if _, _, err := Edit(path, flagDefaults(), func(f *File) error { return f.AddTenant("a") }); err == nil {
		t.Fatal("a second tenant a was accepted")
	}
	// Limits written by hand survive an edit by the CLI.
	if err := os.WriteFile(path, []byte("defaults: {ingestion_rate: 42}\ntenants:\n  a:\n    limits: {max_series: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, c4, err := Edit(path, flagDefaults(), func(f *File) error { return f.AddTenant("b") })
	if err != nil {
		t.Fatal(err)
	}
	if c4.Limits["a"].MaxSeries != 3 || c4.Defaults.IngestionRate != 42 || c4.Limits["a"].IngestionRate != 42 {
		t.Fatalf("limits lost by an edit: defaults %v, a %v", c4.Defaults.IngestionRate, c4.Limits["a"])
	}
}

func TestConcurrentEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, _, err := Edit(path, flagDefaults(), func(f *File) error { return f.AddTenant("t" + string(rune('a'+i))) }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c, err := Load(path, flagDefaults())
	if err != nil || len(c.Credentials.Tenants) != 10 {
		t.Fatalf("after 10 concurrent edits: %v tenants, %v", len(c.Credentials.Tenants), err)
	}
}

func TestWatcherKeepsGoodConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(path, []byte("tenants: {a: {limits: {max_series: 5}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var applied []*Config
	w := NewWatcher(path, time.Hour, flagDefaults(), func(_, c *Config) { applied = append(applied, c) }, nil, nil)
	if err := w.Load(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("tenants: {a: {limits: {max_series: oops}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.reload(t.Context())
	if len(applied) != 1 || w.Current().Limits["a"].MaxSeries != 5 {
		t.Fatalf("a bad edit replaced the configuration: %d applied", len(applied))
	}
	if err := os.WriteFile(path, []byte("tenants: {a: {limits: {max_series: 9}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.reload(t.Context())
	w.reload(t.Context()) // unchanged file: not applied again
	if len(applied) != 2 || w.Current().Limits["a"].MaxSeries != 9 {
		t.Fatalf("good edit: %d applied, max_series %d", len(applied), w.Current().Limits["a"].MaxSeries)
	}
}
