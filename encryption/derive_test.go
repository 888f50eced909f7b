package encryption_test

import (
	"bytes"
	"testing"
)

// TestDerivedKey: a derived key is the same for the same tenant, purpose
// and data key, and differs for another tenant, another purpose, after a
// rotation and after the tenant's keys are deleted (#15).
func TestDerivedKey(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	derive := func(tenant, purpose string) []byte {
		t.Helper()
		_, k, err := e.kr.DerivedKey(t.Context(), tenant, purpose, 32)
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 32 {
			t.Fatalf("derived %d bytes, want 32", len(k))
		}
		return k
	}
	a := derive("tenant-a", "results cache")
	if !bytes.Equal(a, derive("tenant-a", "results cache")) {
		t.Fatal("the same derivation gives another key")
	}
	for name, other := range map[string][]byte{"another tenant": derive("tenant-b", "results cache"), "another purpose": derive("tenant-a", "other")} {
		if bytes.Equal(a, other) {
			t.Errorf("%s derives the same key", name)
		}
	}
	if _, err := e.kr.RotateTenant(t.Context(), "tenant-a"); err != nil {
		t.Fatal(err)
	}
	rotated := derive("tenant-a", "results cache")
	if bytes.Equal(a, rotated) {
		t.Error("a rotation keeps the derived key")
	}
	if err := e.kr.DeleteTenantKeys(t.Context(), "tenant-a"); err != nil {
		t.Fatal(err)
	}
	if k := derive("tenant-a", "results cache"); bytes.Equal(k, rotated) || bytes.Equal(k, a) {
		t.Error("deleting the tenant's keys keeps the derived key")
	}
}
