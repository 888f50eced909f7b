package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/encryption"
)

func TestAuditCommand(t *testing.T) {
	dataDir := t.TempDir()
	// A tenant command records its changes in the audit log.
	if err := runTenant([]string{"create", "-data.dir", dataDir, "-tenant", "team-a"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, "audit", "audit.log")
	es, err := audit.ReadEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		found = found || e.Action == audit.ActionTenantCreate && e.Tenant == "team-a" && strings.HasPrefix(e.Actor, "cli")
	}
	if !found {
		t.Fatalf("no tenant.create entry for team-a by a cli actor in %+v", es)
	}

	var out bytes.Buffer
	if err := auditVerify([]string{"-data.dir", dataDir}, &out); err != nil {
		t.Fatalf("verify of an untouched log: %v", err)
	}
	if !strings.Contains(out.String(), ": OK, ") {
		t.Errorf("verify printed %q", out.String())
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte("team-a"), []byte("team-b"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = auditVerify([]string{"-audit.log-file", path}, &out)
	if te, ok := errors.AsType[*audit.TamperError](err); !ok || te.Kind != audit.KindEdited {
		t.Fatalf("verify of an edited log: %v", err)
	}
	if !strings.Contains(out.String(), "FAILED: edited at line") {
		t.Errorf("verify printed %q", out.String())
	}
	if err := runAudit([]string{"check"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("unknown subcommand: %v", err)
	}
}

// TestAuditShow: the CLI's entries are sealed (#12); `audit show` opens
// them with the key file, also those sealed before a master key rotation,
// and fails for entries another key file cannot open.
func TestAuditShow(t *testing.T) {
	dataDir := t.TempDir()
	if _, err := encryption.LoadOrCreate(filepath.Join(dataDir, encryption.DefaultKeyFileName)); err != nil {
		t.Fatal(err)
	}
	create := func(tenant string) {
		t.Helper()
		if err := runTenant([]string{"create", "-data.dir", dataDir, "-tenant", tenant}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	create("team-a")
	if err := runKeys([]string{"rotate-master", "-data.dir", dataDir}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	create("team-b")
	raw, err := os.ReadFile(filepath.Join(dataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("runtime.yaml")) || bytes.Contains(raw, []byte(`"target"`)) {
		t.Fatalf("targets or details in clear:\n%s", raw)
	}

	show := func(args ...string) ([]shownEntry, error) {
		t.Helper()
		var out bytes.Buffer
		err := auditShow(append([]string{"-data.dir", dataDir}, args...), &out)
		var es []shownEntry
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var e shownEntry
			if jerr := json.Unmarshal([]byte(line), &e); jerr != nil {
				t.Fatalf("audit show printed %q: %v", line, jerr)
			}
			es = append(es, e)
		}
		return es, err
	}
	es, err := show("-action", audit.ActionTenantCreate)
	if err != nil || len(es) != 2 {
		t.Fatalf("show: %d entries, %v", len(es), err)
	}
	for i, tenant := range []string{"team-a", "team-b"} {
		if es[i].Tenant != tenant || es[i].Target != tenant || es[i].Details["runtime_file"] != filepath.Join(dataDir, "runtime.yaml") {
			t.Errorf("entry %d: %+v", i, es[i])
		}
	}
	if es, err := show("-tenant", "team-b"); err != nil || len(es) != 1 || es[0].Target != "team-b" {
		t.Errorf("show -tenant team-b: %+v, %v", es, err)
	}
	if _, err := encryption.LoadOrCreate(filepath.Join(dataDir, "other.json")); err != nil {
		t.Fatal(err)
	}
	es, err = show("-encryption.key-file", filepath.Join(dataDir, "other.json"))
	if err == nil || !strings.Contains(err.Error(), "could not be decrypted") || es[0].Error == "" || es[0].Target != "" {
		t.Errorf("show with another key file: %+v, %v", es, err)
	}
	if err := auditVerify([]string{"-data.dir", dataDir}, io.Discard); err != nil {
		t.Errorf("verify: %v", err)
	}
}
