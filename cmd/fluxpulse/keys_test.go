package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
	"github.com/fluxpulse/fluxpulse/encryption"
)

func TestKeysCommand(t *testing.T) {
	dataDir := t.TempDir()
	raw, err := bucket.NewFilesystem(filepath.Join(dataDir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cfg := encryption.Config{KeyFile: filepath.Join(dataDir, encryption.DefaultKeyFileName), KeyCacheTTL: time.Minute}
	enc, _, err := encryption.New(cfg, raw, nil) // as the server does on first start
	if err != nil {
		t.Fatal(err)
	}
	buckettest.Upload(t, enc, "tenant-1/blocks/01/index", []byte("index"))
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := runKeys(append(args, "-data.dir", dataDir), &out, &errOut); err != nil {
			t.Fatalf("keys %q: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	if out := run("rotate-master"); !strings.Contains(out, "re-wrapped 1 data keys of 1 tenants") {
		t.Errorf("rotate-master printed %q", out)
	}
	if out := run("rotate-tenant", "-tenant", "tenant-1"); !strings.Contains(out, "new data key") {
		t.Errorf("rotate-tenant printed %q", out)
	}
	if out := run("list", "-tenant", "tenant-1"); strings.Count(out, "wrapped by master key") != 2 {
		t.Errorf("list printed %q, want two keys", out)
	}
	server, _, err := encryption.New(cfg, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buckettest.Get(t, server, "tenant-1/blocks/01/index")); got != "index" {
		t.Errorf("after rotations read %q", got)
	}
	for _, args := range [][]string{{}, {"bogus"}, {"rotate-tenant"}, {"rotate-master", "-encryption.key-file", filepath.Join(dataDir, "missing.json")}} {
		if err := runKeys(append(args, "-data.dir", dataDir), &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("keys %q succeeded", args)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"http://am:9093":                   "http://am:9093",
		"http://u:secret@am:9093,http://b": "http://u:xxxxx@am:9093,http://b",
		"plain value":                      "plain value",
		"https://user@host/p":              "https://user@host/p",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
