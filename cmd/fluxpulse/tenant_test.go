package main

import (
	"io"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// TestTenantCreateRefusesReservedNames: `fluxpulse tenant create` accepted
// a tenant named like the bucket's temporary files, whose pushes then
// succeeded while every listing of its objects failed (#12).
func TestTenantCreateRefusesReservedNames(t *testing.T) {
	dataDir := t.TempDir()
	for _, p := range bucket.ReservedPrefixes() {
		err := runTenant([]string{"create", "-data.dir", dataDir, "-tenant", p + "x"}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("tenant create %q: %v, want an error saying the name is reserved", p+"x", err)
		}
	}
}
