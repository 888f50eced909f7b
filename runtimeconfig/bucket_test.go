package runtimeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// bucketStores returns n stores over one bucket, as n processes have them.
func bucketStores(t *testing.T, n int) ([]*BucketStore, string) {
	t.Helper()
	dir := t.TempDir()
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*BucketStore
	for range n {
		raw, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, NewBucketStore(encryption.NewSystemStore(raw, "runtime", kf.Derive("test")), flagDefaults()))
	}
	return out, dir
}

func TestBucketStoreConcurrentChanges(t *testing.T) {
	stores, _ := bucketStores(t, 2)
	ctx := t.Context()
	var wg sync.WaitGroup
	for k := range 16 {
		wg.Go(func() {
			if _, _, err := stores[k%2].Apply(ctx, Op{Action: OpTenantCreate, Tenant: fmt.Sprintf("t%02d", k)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	b, err := stores[1].Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b, flagDefaults())
	if err != nil || len(c.Credentials.Tenants) != 16 {
		t.Fatalf("after 16 concurrent changes from two processes: %d tenants, %v", len(c.Credentials.Tenants), err)
	}
}

func TestBucketStoreChanges(t *testing.T) {
	stores, dir := bucketStores(t, 2)
	a, b := stores[0], stores[1]
	ctx := t.Context()
	if _, _, err := a.Apply(ctx, Op{Action: OpTenantCreate, Tenant: "acme", Limits: map[string]any{"max_series": 7}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Apply(ctx, Op{Action: OpTenantCreate, Tenant: "acme"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	token, entry, err := NewTokenEntry(TokenSpec{Tenant: "acme", Scopes: []tenantauth.Scope{tenantauth.ScopeWrite}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, cur, err := b.Apply(ctx, Op{Action: OpTokenCreate, Tenant: "acme", Token: &entry})
	if err != nil || len(cur.Credentials.Tenants["acme"]) != 1 || cur.Limits["acme"].MaxSeries != 7 {
		t.Fatalf("token create: %v, %+v", err, cur)
	}
	if _, _, err := a.Apply(ctx, Op{Action: OpLimitsSet, Tenant: "acme", Limits: map[string]any{"max_seriez": 1}}); err == nil || !strings.Contains(err.Error(), "max_seriez") {
		t.Fatalf("bad limit: %v", err)
	}
	if _, cur, err = a.Apply(ctx, Op{Action: OpLimitsSet, Tenant: "acme", Limits: map[string]any{"max_series": nil, "ingestion_rate": 5}}); err != nil || cur.Limits["acme"].MaxSeries == 7 || cur.Limits["acme"].IngestionRate != 5 {
		t.Fatalf("limits change: %v, %+v", err, cur.Limits["acme"])
	}
	if _, cur, err = a.Apply(ctx, Op{Action: OpTokenRevoke, TokenID: entry.ID}); err != nil || len(cur.Credentials.Tenants["acme"]) != 0 {
		t.Fatalf("revoke: %v", err)
	}
	if _, _, err := b.Apply(ctx, Op{Action: OpTokenRevoke, TokenID: entry.ID}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v, want ErrNotFound", err)
	}
	var names []string
	_ = a.objs.List(ctx, "", func(n string) error { names = append(names, n); return nil })
	if len(names) != 4 { // create, token, limits, revoke: the refused ones were not written
		t.Fatalf("change objects %v, want 4", names)
	}
	// Nothing in the bucket holds a tenant's name or a token hash in clear.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, _ error) error {
		if b, _ := os.ReadFile(p); d.Type().IsRegular() && (bytes.Contains(b, []byte("acme")) || bytes.Contains(b, []byte(entry.Hash[7:]))) {
			t.Errorf("%s holds the tenant or the token hash in clear", p)
		}
		return nil
	})
	_ = token
}
