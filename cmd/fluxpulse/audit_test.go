package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/audit"
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
