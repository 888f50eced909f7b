package bucket_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
)

// TestFilesystemStaysInRoot plants symbolic links that point outside the
// bucket directory: reads and writes through them must fail.
func TestFilesystemStaysInRoot(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside data"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := os.Mkdir(filepath.Join(dir, "tenant-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "tenant-1", "file-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "tenant-1", "dir-link")); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if rc, err := b.Get(ctx, "tenant-1/file-link"); err == nil {
		rc.Close()
		t.Error("read through a link to outside the bucket succeeded")
	}
	if err := b.Upload(ctx, "tenant-1/dir-link/planted", strings.NewReader("x")); err == nil {
		t.Error("write through a link to outside the bucket succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a file was written outside the bucket")
	}
}

// TestFilesystemLayout checks that objects are plain files at their names
// and that temporary files of interrupted uploads are never listed.
func TestFilesystemLayout(t *testing.T) {
	dir := t.TempDir()
	b, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buckettest.Upload(t, b, "tenant-1/blocks/01/meta.json", []byte("{}"))
	got, err := os.ReadFile(filepath.Join(dir, "tenant-1", "blocks", "01", "meta.json"))
	if err != nil || string(got) != "{}" {
		t.Fatalf("object file: %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tenant-1", "blocks", ".fluxpulse-tmp-LEFTOVER"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tenant-1", "empty", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if names := buckettest.List(t, b, "tenant-1", false); !slices.Equal(names, []string{"tenant-1/blocks/"}) {
		t.Errorf("listing = %q; empty directories must not be listed", names)
	}
	if names := buckettest.List(t, b, "", true); !slices.Equal(names, []string{"tenant-1/blocks/01/meta.json"}) {
		t.Errorf("recursive listing = %q; temporary files must not be listed", names)
	}
}
