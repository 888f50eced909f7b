package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/encryption"
)

func openSealed(t *testing.T, path string, keys audit.Keys) *audit.Logger {
	t.Helper()
	l, err := audit.OpenWithOptions(path, audit.Options{Keys: keys}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func unsealAll(t *testing.T, path string, keys audit.Keys) []audit.Entry {
	t.Helper()
	es, err := audit.ReadEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range es {
		if err := audit.Unseal(&es[i], keys); err != nil {
			t.Fatal(err)
		}
	}
	return es
}

// TestSealedEntries: query expressions (label names and values: customer
// data) were stored in clear in the audit log (#12). Now targets and details
// are sealed under keys derived from the master keys: nothing of them is in
// the file, the chain verifies without keys, a changed byte fails it, the
// key file opens them, also after a rotation of the master key.
func TestSealedEntries(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master-keys.json")
	kf, err := encryption.LoadOrCreate(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit", "audit.log")
	l := openSealed(t, path, kf.Derive(audit.KeyPurpose))
	queries := []string{`sum(rate(http_requests_total{customer="acme-7f3"}[5m]))`, `up{instance="db-secret-42"}`}
	l.Log(audit.Entry{Actor: "tok-1", Tenant: "team-a", Action: audit.ActionQuery, Target: queries[0],
		Outcome: audit.OutcomeSuccess, Details: map[string]any{"label": "acme-7f3", "series": 3}})
	if _, err := kf.Rotate(); err != nil {
		t.Fatal(err)
	}
	l.Log(audit.Entry{Actor: "tok-1", Tenant: "team-a", Action: audit.ActionQuery, Target: queries[1], Outcome: audit.OutcomeSuccess})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"acme-7f3", "http_requests_total", "customer", "db-secret-42", `"target"`, `"details"`} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the audit log holds %q in clear:\n%s", s, raw)
		}
	}
	for _, s := range []string{`"actor":"tok-1"`, `"tenant":"team-a"`, `"action":"query"`, `"outcome":"success"`} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("the audit log lacks %s in clear", s)
		}
	}
	if rep, err := audit.Verify(path); err != nil || rep.Entries != 2 {
		t.Fatalf("verify without keys: %+v, %v", rep, err)
	}

	// What the operator's `fluxpulse audit show` does: a fresh load of the
	// key file, which now has two master keys.
	reloaded, err := encryption.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys := reloaded.Derive(audit.KeyPurpose)
	es := unsealAll(t, path, keys)
	if es[0].Sealed.KeyID == es[1].Sealed.KeyID {
		t.Errorf("both entries sealed with key %s; the second should use the rotated one", es[0].Sealed.KeyID)
	}
	for i, q := range queries {
		if es[i].Target != q {
			t.Errorf("entry %d: target %q, want %q", i, es[i].Target, q)
		}
	}
	if es[0].Details["label"] != "acme-7f3" || fmt.Sprint(es[0].Details["series"]) != "3" {
		t.Errorf("entry 0 details %v", es[0].Details)
	}

	// A sealed member moved to another entry does not open.
	moved := es[1]
	moved.Sealed = es[0].Sealed
	if err := audit.Unseal(&moved, keys); !errors.Is(err, audit.ErrUnseal) {
		t.Errorf("a sealed member moved to another entry: %v, want ErrUnseal", err)
	}
	// Another key file does not open them.
	other, err := encryption.LoadOrCreate(filepath.Join(dir, "other-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Unseal(&es[0], other.Derive(audit.KeyPurpose)); err == nil {
		t.Error("another key file opened an entry")
	}

	// One changed byte of the ciphertext fails the chain.
	i := bytes.Index(raw, []byte(`"data":"`)) + len(`"data":"`) + 10
	if raw[i] == 'A' {
		raw[i] = 'B'
	} else {
		raw[i] = 'A'
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(path)
	var te *audit.TamperError
	if !errors.As(err, &te) || te.Kind != audit.KindEdited || te.Line != 1 {
		t.Fatalf("verify of a changed ciphertext: %+v, %v; want edited at line 1", rep, err)
	}
}

// failingKeys has no current key, like a key file that cannot be read.
type failingKeys struct{}

func (failingKeys) Current() (string, []byte, error) {
	return "", nil, errors.New("key file unreadable")
}
func (failingKeys) Key(string) ([]byte, error) { return nil, errors.New("key file unreadable") }

// TestUnsealableEntryWithholdsTarget: without a key the entry is still
// written, without its target and details, never in clear (#12).
func TestUnsealableEntryWithholdsTarget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openSealed(t, path, failingKeys{})
	l.Log(audit.Entry{Actor: "tok-1", Tenant: "team-a", Action: audit.ActionQuery, Target: `up{customer="acme-7f3"}`,
		Outcome: audit.OutcomeSuccess, Details: map[string]any{"label": "acme-7f3"}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("acme-7f3")) {
		t.Fatalf("the target or details were written in clear:\n%s", raw)
	}
	es, err := audit.ReadEntries(path)
	if err != nil || len(es) != 1 || es[0].Action != audit.ActionQuery || es[0].Details["details_withheld"] == nil {
		t.Fatalf("entries %+v, %v; want the query entry with details_withheld", es, err)
	}
}

// TestSealedAfterClearEntries: a log written in clear before an upgrade goes
// on with sealed entries in one chain.
func TestSealedAfterClearEntries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	clear := openSealed(t, path, nil)
	clear.Log(audit.Entry{Actor: "cli:root", Tenant: "team-a", Action: audit.ActionTenantCreate, Target: "team-a", Outcome: audit.OutcomeSuccess})
	if err := clear.Close(); err != nil {
		t.Fatal(err)
	}
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := kf.Derive(audit.KeyPurpose)
	sealed := openSealed(t, path, keys)
	sealed.Log(audit.Entry{Actor: "tok-1", Tenant: "team-a", Action: audit.ActionQuery, Target: "up", Outcome: audit.OutcomeSuccess})
	if err := sealed.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.Verify(path); err != nil || rep.Entries != 2 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	es := unsealAll(t, path, keys)
	if es[0].Sealed != nil || es[1].Sealed == nil || es[0].Target != "team-a" || es[1].Target != "up" {
		t.Fatalf("entries %+v", es)
	}
	if raw, _ := os.ReadFile(path); strings.Count(string(raw), `"sealed":`) != 1 {
		t.Fatalf("want exactly one sealed entry:\n%s", raw)
	}
}

// TestSealedLongEntry: an entry too long to store is cut before it is
// sealed, so its sealed line still fits.
func TestSealedLongEntry(t *testing.T) {
	dir := t.TempDir()
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := kf.Derive(audit.KeyPurpose)
	path := filepath.Join(dir, "audit.log")
	l := openSealed(t, path, keys)
	l.Log(audit.Entry{Actor: "tok-1", Action: audit.ActionQuery, Target: strings.Repeat("x", 100<<10),
		Outcome: audit.OutcomeSuccess, Details: map[string]any{"big": strings.Repeat("y", 60<<10)}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(path); err != nil {
		t.Fatal(err)
	}
	es := unsealAll(t, path, keys)
	if len(es[0].Target) > 1100 || es[0].Details["details_omitted"] == nil {
		t.Fatalf("target of %d bytes, details %v; want it cut and the details omitted", len(es[0].Target), es[0].Details)
	}
}
