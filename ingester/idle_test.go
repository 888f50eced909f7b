package ingester

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// idleIngester is an ingester shipping to a filesystem bucket whose Run
// loop does not tick during the test (closeIdle is called by hand).
func idleIngester(t *testing.T) (*Ingester, bucket.Bucket) {
	t.Helper()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	cfg, lim := defaults()
	cfg.Dir, cfg.ShipInterval, cfg.BlockRange, cfg.Retention = t.TempDir(), time.Hour, time.Hour, time.Hour
	cfg.CloseIdleTimeout, cfg.IdleCloseGrace = time.Minute, 30*time.Second
	ing, err := New(cfg, limits.NewOverrides(lim), bkt, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = ing.Close() })
	for deadline := time.Now().Add(30 * time.Second); !ing.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ingester not ready")
		}
	}
	return ing, bkt
}

// TestCloseIdleTenant: a tenant without pushes for the idle timeout has its
// head cut and shipped, then, after the grace, its TSDB closed and its
// directory removed; a tenant that pushed stays; the idle tenant's next
// push opens it again, empty (#17).
func TestCloseIdleTenant(t *testing.T) {
	ing, bkt := idleIngester(t)
	ctx := t.Context()
	ts := time.Now().Add(-10 * time.Minute).UnixMilli()
	for _, id := range []string{"idle", "busy"} {
		if _, err := ing.Push(ctx, id, request("up", ts, 1, false, remotewrite.Metadata{})); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(ing.cfg.Dir, "idle")
	now := time.Now()
	ing.closeIdle(ctx, now.Add(30*time.Second)) // not idle yet
	if got := ing.ActiveSeries(); got["idle"] != 1 || got["busy"] != 1 {
		t.Fatalf("active series %v before the timeout", got)
	}
	later := now.Add(2 * time.Minute)
	if _, err := ing.Push(ctx, "busy", request("up", ts+1000, 1, false, remotewrite.Metadata{})); err != nil {
		t.Fatal(err)
	}
	ing.tenants["busy"].touch(later.Add(time.Hour)) // busy keeps pushing
	ing.closeIdle(ctx, later)                       // idle: cut and shipped, not closed yet
	if got := ing.ActiveSeries(); got["idle"] != 0 || got["busy"] != 1 {
		t.Fatalf("active series %v after the idle tenant's head was cut, want idle at 0 and busy at 1", got)
	}
	var blocks int
	if err := bkt.Iter(ctx, "idle/blocks/", bucket.IterOptions{}, func(string) error { blocks++; return nil }); err != nil || blocks == 0 {
		t.Fatalf("the idle tenant's head was not shipped: %d blocks (%v)", blocks, err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the directory went before the grace: %v", err)
	}
	ing.closeIdle(ctx, later.Add(10*time.Second)) // within the grace
	if _, ok := ing.ActiveSeries()["idle"]; !ok {
		t.Fatal("the idle tenant was closed before the grace was over")
	}
	ing.closeIdle(ctx, later.Add(time.Minute))
	if _, ok := ing.ActiveSeries()["idle"]; ok {
		t.Fatal("the idle tenant's TSDB is still open after the grace")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the idle tenant's directory is still there: %v", err)
	}
	if got := ing.ActiveSeries(); got["busy"] != 1 {
		t.Fatalf("busy tenant: %v", got)
	}
	// The next push opens it again.
	if _, err := ing.Push(ctx, "idle", request("up", time.Now().UnixMilli(), 2, false, remotewrite.Metadata{})); err != nil {
		t.Fatal(err)
	}
	if got := samples(t, ing, "idle", "up"); len(got) != 1 || got[0] != 2 {
		t.Fatalf("after reopening, idle has %v, want [2]", got)
	}
}

// TestCloseIdleTenantRace: a push that holds the tenant while it is being
// closed as idle keeps its samples: the directory stays and the TSDB is
// opened again (#17).
func TestCloseIdleTenantRace(t *testing.T) {
	ing, _ := idleIngester(t)
	ctx := t.Context()
	if _, err := ing.Push(ctx, "racy", request("up", time.Now().UnixMilli(), 1, false, remotewrite.Metadata{})); err != nil {
		t.Fatal(err)
	}
	tn, err := ing.tenant(ctx, "racy", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.flushHead(ing.cfg.BlockRange); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.ship(ctx, ing.bkt); err != nil || !tn.drained() {
		t.Fatalf("not drained: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- ing.closeIdleTenant(tn) }()
	// The close waits for this holder, which appends a sample meanwhile.
	app := tn.db.Appender(ctx)
	if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "j"), time.Now().UnixMilli()+1, 7); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	tn.touch(time.Now())
	tn.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := samples(t, ing, "racy", "up"); len(got) != 2 || got[1] != 7 {
		t.Fatalf("after the racing close, racy has %v, want [1 7]", got)
	}
}
