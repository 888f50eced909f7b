package encryption_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
	"github.com/fluxpulse/fluxpulse/encryption"
)

// env is an encrypting bucket with the raw bucket below it.
type env struct {
	raw     bucket.Bucket
	enc     *encryption.Bucket
	kr      *encryption.Keyring
	keyFile string
}

func newFilesystem(t testing.TB) bucket.Bucket {
	t.Helper()
	b, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// newEnv encrypts raw with a fresh key file.
func newEnv(t testing.TB, raw bucket.Bucket) env {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "keys", "master-keys.json")
	enc, kr, err := encryption.New(encryption.Config{KeyFile: keyFile, KeyCacheTTL: time.Minute}, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env{raw: raw, enc: enc, kr: kr, keyFile: keyFile}
}

// process returns another "process" on the same bucket and key file: its
// own key file handle and keyring, with the given cache TTL.
func (e env) process(t testing.TB, ttl time.Duration) *encryption.Bucket {
	t.Helper()
	kf, err := encryption.LoadKeyFile(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return encryption.NewBucket(e.raw, encryption.NewKeyring(e.raw, kf, encryption.KeyringOptions{CacheTTL: ttl}))
}

func TestAcceptanceFilesystem(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket { return newEnv(t, newFilesystem(t)).enc }, buckettest.Options{})
}

func TestAcceptanceS3(t *testing.T) {
	srv := buckettest.StartS3(t, false)
	buckettest.Run(t, func(t *testing.T) bucket.Bucket { return newEnv(t, srv.NewBucket(t)).enc }, buckettest.Options{})
}

// readErr reads the whole object and returns the error of Get or of the
// read, failing the test if the read succeeds with other content than want.
func readErr(t *testing.T, b bucket.Bucket, name string, off, length int64) ([]byte, error) {
	t.Helper()
	rc, err := b.GetRange(t.Context(), name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestRoundTripSizesAndRanges(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	const pkg = 64 << 10
	for _, size := range []int64{0, 1, pkg - 1, pkg, pkg + 1, 3 * pkg, 3*pkg + 5} {
		content := buckettest.Random(uint64(size), size)
		buckettest.Upload(t, e.enc, "tenant-1/obj", content)
		if got := buckettest.Get(t, e.enc, "tenant-1/obj"); !bytes.Equal(got, content) {
			t.Fatalf("size %d: whole read differs", size)
		}
		raw := buckettest.Get(t, e.raw, "tenant-1/obj")
		if want := encryption.HeaderSize + (size+pkg-1)/pkg*32 + size; int64(len(raw)) != want {
			t.Errorf("size %d: stored %d bytes, want %d", size, len(raw), want)
		}
		if size >= 16 && bytes.Contains(raw, content[:16]) {
			t.Errorf("size %d: plaintext visible in the stored object", size)
		}
		attrs, err := e.enc.Attributes(t.Context(), "tenant-1/obj")
		if err != nil || attrs.Size != size {
			t.Errorf("size %d: attributes %+v, %v", size, attrs, err)
		}
		for _, off := range []int64{0, 1, pkg - 1, pkg, pkg + 1, 2*pkg - 3, 2 * pkg, 3*pkg - 1, 3 * pkg, 3*pkg + 4, 3*pkg + 5, 4 * pkg} {
			for _, length := range []int64{1, 3, pkg, pkg + 2, 2 * pkg, -1} {
				want := content[min(off, size):]
				if length >= 0 {
					want = want[:min(length, int64(len(want)))]
				}
				if got := buckettest.GetRange(t, e.enc, "tenant-1/obj", off, length); !bytes.Equal(got, want) {
					t.Errorf("size %d: GetRange(%d, %d) gave %d bytes, want %d", size, off, length, len(got), len(want))
				}
			}
		}
	}
}

// TestRangedReadFetchesOnlyCoveringPackages counts the bytes the
// encrypting bucket reads from the bucket below it.
func TestRangedReadFetchesOnlyCoveringPackages(t *testing.T) {
	reg := prometheus.NewRegistry()
	ib, err := bucket.Instrument(newFilesystem(t), "filesystem", reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, ib)
	const size = 32 << 20
	content := buckettest.Random(3, size)
	buckettest.Upload(t, e.enc, "tenant-1/blocks/01/chunks/000001", content)
	const pkgBytes = 64<<10 + 32
	for _, tc := range []struct {
		name        string
		off, length int64
		wantFetched int64
	}{
		{"inside one package", 20<<20 + 100, 4096, encryption.HeaderSize + pkgBytes},
		{"across a package boundary", 20<<20 - 10, 20, encryption.HeaderSize + 2*pkgBytes},
		{"in the first package", 10, 100, encryption.HeaderSize + pkgBytes},
		{"the last byte", size - 1, 1, encryption.HeaderSize + pkgBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := readBytes(t, reg)
			got := buckettest.GetRange(t, e.enc, "tenant-1/blocks/01/chunks/000001", tc.off, tc.length)
			if !bytes.Equal(got, content[tc.off:tc.off+tc.length]) {
				t.Fatalf("range content differs")
			}
			if fetched := readBytes(t, reg) - before; fetched != tc.wantFetched {
				t.Errorf("fetched %d bytes from the inner bucket for %d plaintext bytes of a %d-byte object, want %d",
					fetched, tc.length, size, tc.wantFetched)
			}
		})
	}
}

func TestTamperingIsDetected(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	content := buckettest.Random(9, 200_000) // 4 packages, the last partial
	buckettest.Upload(t, e.enc, "tenant-1/obj", content)
	stored := buckettest.Get(t, e.raw, "tenant-1/obj")
	const pkgBytes = 64<<10 + 32
	var positions []int
	for i := range encryption.HeaderSize { // every header byte
		positions = append(positions, i)
	}
	for p := range 4 { // package header, payload start, middle and tag of each package
		base := encryption.HeaderSize + p*pkgBytes
		positions = append(positions, base, base+5, base+16, base+1000, min(base+pkgBytes-1, len(stored)-1))
	}
	for _, pos := range positions {
		for _, bit := range []byte{0x01, 0x80} {
			mod := slices.Clone(stored)
			mod[pos] ^= bit
			buckettest.Upload(t, e.raw, "tenant-1/obj", mod)
			got, err := readErr(t, e.enc, "tenant-1/obj", 0, -1)
			if !errors.Is(err, encryption.ErrDecrypt) {
				t.Fatalf("flipping bit %#x of byte %d: read %d bytes, err %v; want ErrDecrypt", bit, pos, len(got), err)
			}
			if pos >= encryption.HeaderSize { // a range over the package fails too
				p := int64(pos-encryption.HeaderSize) / pkgBytes
				if _, err := readErr(t, e.enc, "tenant-1/obj", p*(64<<10)+10, 10); !errors.Is(err, encryption.ErrDecrypt) {
					t.Fatalf("flipping byte %d: range over package %d: err %v, want ErrDecrypt", pos, p, err)
				}
			}
		}
	}
	for _, cut := range []int{0, 10, encryption.HeaderSize, encryption.HeaderSize + pkgBytes, len(stored) - 1} {
		buckettest.Upload(t, e.raw, "tenant-1/obj", stored[:cut])
		if got, err := readErr(t, e.enc, "tenant-1/obj", 0, -1); !errors.Is(err, encryption.ErrDecrypt) {
			t.Fatalf("truncated to %d bytes: read %d bytes, err %v; want ErrDecrypt", cut, len(got), err)
		}
	}
	buckettest.Upload(t, e.raw, "tenant-1/obj", append(slices.Clone(stored), stored[encryption.HeaderSize:encryption.HeaderSize+100]...))
	if _, err := readErr(t, e.enc, "tenant-1/obj", 0, -1); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("appended data: err %v, want ErrDecrypt", err)
	}
	buckettest.Upload(t, e.enc, "tenant-1/empty", nil)
	stored = buckettest.Get(t, e.raw, "tenant-1/empty")
	buckettest.Upload(t, e.raw, "tenant-1/empty", append(stored, 0))
	if _, err := readErr(t, e.enc, "tenant-1/empty", 0, -1); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("data after an empty object: err %v, want ErrDecrypt", err)
	}
}

func TestCopiedObjectDoesNotDecrypt(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	buckettest.Upload(t, e.enc, "tenant-a/blocks/01/index", []byte("tenant a's index"))
	buckettest.Upload(t, e.enc, "tenant-b/blocks/02/index", []byte("tenant b's index"))
	stored := buckettest.Get(t, e.raw, "tenant-a/blocks/01/index")
	for _, dst := range []string{
		"tenant-a/blocks/02/index", // another name, same tenant and key
		"tenant-b/blocks/01/index", // another tenant with keys of its own
		"tenant-c/blocks/01/index", // a tenant without keys
	} {
		buckettest.Upload(t, e.raw, dst, stored)
		got, err := readErr(t, e.enc, dst, 0, -1)
		if !errors.Is(err, encryption.ErrDecrypt) {
			t.Errorf("copy at %s: read %q, err %v; want ErrDecrypt", dst, got, err)
		}
		if errors.Is(err, encryption.ErrTenantKeysDeleted) {
			t.Errorf("copy at %s: err %v must not claim the tenant was deleted", dst, err)
		}
	}
	// A data key object copied to another tenant does not unwrap there.
	infos, err := e.kr.Keys(t.Context(), "tenant-a")
	if err != nil || len(infos) != 1 {
		t.Fatalf("keys of tenant-a: %v, %v", infos, err)
	}
	keyObj := buckettest.Get(t, e.raw, "tenant-a/keys/"+infos[0].ID.String())
	buckettest.Upload(t, e.raw, "tenant-b/keys/"+infos[0].ID.String(), keyObj)
	other := e.process(t, time.Minute)
	buckettest.Upload(t, e.raw, "tenant-b/blocks/01/index", stored)
	if got, err := readErr(t, other, "tenant-b/blocks/01/index", 0, -1); !errors.Is(err, encryption.ErrDecrypt) {
		t.Errorf("object and key copied to tenant-b: read %q, err %v; want ErrDecrypt", got, err)
	}
}

func TestReservedAndInvalidNames(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	for _, name := range []string{"no-tenant", "bad tenant/x", "../x/y", "tenant-1/keys", "tenant-1/keys/0123"} {
		if err := e.enc.Upload(t.Context(), name, bytes.NewReader([]byte("x"))); !errors.Is(err, bucket.ErrInvalidName) {
			t.Errorf("upload %q: err %v, want ErrInvalidName", name, err)
		}
		if _, err := e.enc.Get(t.Context(), name); !errors.Is(err, bucket.ErrInvalidName) {
			t.Errorf("get %q: err %v, want ErrInvalidName", name, err)
		}
	}
	buckettest.Upload(t, e.enc, "tenant-1/a", []byte("x"))
	if got := buckettest.List(t, e.enc, "tenant-1", false); !slices.Equal(got, []string{"tenant-1/a"}) {
		t.Errorf("listing shows %q; the key directory must be hidden", got)
	}
	if got := buckettest.List(t, e.enc, "", true); !slices.Equal(got, []string{"tenant-1/a"}) {
		t.Errorf("recursive listing shows %q; the key directory must be hidden", got)
	}
	if got := buckettest.List(t, e.raw, "tenant-1/keys", false); len(got) != 1 {
		t.Errorf("raw key directory holds %q, want one data key", got)
	}
}
