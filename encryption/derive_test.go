package encryption_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
	"github.com/fluxpulse/fluxpulse/encryption"
)

// TestDerivedKey: a derived key is the same for the same tenant, purpose
// and data key, and differs for another tenant, another purpose, after a
// rotation and after the tenant's keys are deleted (#15).
func TestDerivedKey(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	if _, _, err := e.kr.DerivedKey(t.Context(), "tenant-a", "results cache", 32); !errors.Is(err, encryption.ErrKeyNotFound) {
		t.Fatalf("a tenant without keys: %v, want ErrKeyNotFound", err)
	}
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		buckettest.Upload(t, e.enc, tenant+"/x", []byte("x")) // its first data key
	}
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
	if _, _, err := e.kr.DerivedKey(t.Context(), "tenant-a", "results cache", 32); !errors.Is(err, encryption.ErrKeyNotFound) {
		t.Errorf("after deleting the tenant's keys: %v, want ErrKeyNotFound", err)
	}
}
