// Package buckettest is the acceptance suite that every bucket.Bucket
// passes (providers and wrappers alike), and a helper that starts a real
// S3 server (versitygw) for tests.
package buckettest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// Options tune the suite to a provider.
type Options struct {
	// LargeSize is the size of the streaming upload test; make it span
	// several multipart parts. Zero means 12 MiB.
	LargeSize int64
}

// Run runs the acceptance suite. newBucket is called once per subtest and
// must return an empty bucket; every object name the suite uses has at least
// two segments and starts with a valid tenant ID, so tenant-aware wrappers
// can be tested too.
func Run(t *testing.T, newBucket func(t *testing.T) bucket.Bucket, opts Options) {
	if opts.LargeSize == 0 {
		opts.LargeSize = 12 << 20
	}
	tests := []struct {
		name string
		f    func(t *testing.T, b bucket.Bucket)
	}{
		{"UploadGetReplace", testUploadGetReplace},
		{"Missing", testMissing},
		{"ZeroLength", testZeroLength},
		{"GetRange", testGetRange},
		{"LargeStreamingUpload", func(t *testing.T, b bucket.Bucket) { testLarge(t, b, opts.LargeSize) }},
		{"Iter", testIter},
		{"IterStopsOnError", testIterStop},
		{"Delete", testDelete},
		{"InvalidNames", testInvalidNames},
		{"FailedUploadKeepsOldObject", testFailedUpload},
		{"CanceledContext", testCanceled},
		{"Concurrent", testConcurrent},
		{"ConcurrentReplace", testConcurrentReplace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBucket(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.f(t, b)
		})
	}
}

// Upload stores content under name or fails the test.
func Upload(t testing.TB, b bucket.Bucket, name string, content []byte) {
	t.Helper()
	if err := b.Upload(t.Context(), name, bytes.NewReader(content)); err != nil {
		t.Fatalf("upload %q: %v", name, err)
	}
}

// Get reads the whole object or fails the test.
func Get(t testing.TB, b bucket.Bucket, name string) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("get %q: %v", name, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	return got
}

// GetRange reads a range of the object or fails the test.
func GetRange(t testing.TB, b bucket.Bucket, name string, off, length int64) []byte {
	t.Helper()
	rc, err := b.GetRange(t.Context(), name, off, length)
	if err != nil {
		t.Fatalf("get range %q [%d, +%d): %v", name, off, length, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read range %q [%d, +%d): %v", name, off, length, err)
	}
	return got
}

// List returns what Iter lists, or fails the test.
func List(t testing.TB, b bucket.Bucket, dir string, recursive bool) []string {
	t.Helper()
	var names []string
	err := b.Iter(t.Context(), dir, bucket.IterOptions{Recursive: recursive}, func(n string) error {
		names = append(names, n)
		return nil
	})
	if err != nil {
		t.Fatalf("iter %q (recursive %v): %v", dir, recursive, err)
	}
	return names
}

// Random returns n pseudo-random bytes determined by seed.
func Random(seed uint64, n int64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

func testUploadGetReplace(t *testing.T, b bucket.Bucket) {
	ctx := t.Context()
	before := time.Now().Add(-time.Minute)
	Upload(t, b, "tenant-1/obj", []byte("first content"))
	if got := string(Get(t, b, "tenant-1/obj")); got != "first content" {
		t.Fatalf("got %q, want %q", got, "first content")
	}
	Upload(t, b, "tenant-1/obj", []byte("second"))
	if got := string(Get(t, b, "tenant-1/obj")); got != "second" {
		t.Fatalf("after replace got %q, want %q", got, "second")
	}
	attrs, err := b.Attributes(ctx, "tenant-1/obj")
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Size != 6 {
		t.Errorf("size %d, want 6", attrs.Size)
	}
	if attrs.LastModified.Before(before) || attrs.LastModified.After(time.Now().Add(time.Minute)) {
		t.Errorf("last modified %s, want about now", attrs.LastModified)
	}
	ok, err := b.Exists(ctx, "tenant-1/obj")
	if err != nil || !ok {
		t.Errorf("exists = %v, %v; want true, nil", ok, err)
	}
	Upload(t, b, "tenant-1/deep/er/still/obj.json", []byte(`{"a":1}`))
	if got := string(Get(t, b, "tenant-1/deep/er/still/obj.json")); got != `{"a":1}` {
		t.Errorf("nested object: got %q", got)
	}
}

func testMissing(t *testing.T, b bucket.Bucket) {
	ctx := t.Context()
	Upload(t, b, "tenant-1/dir/present", []byte("x"))
	for _, name := range []string{"tenant-1/absent", "tenant-1/dir", "tenant-1/dir/present/below", "tenant-2/absent"} {
		if _, err := b.Get(ctx, name); !bucket.IsNotFound(err) {
			t.Errorf("get %q: err %v, want ErrNotFound", name, err)
		}
		if _, err := b.GetRange(ctx, name, 1, 2); !bucket.IsNotFound(err) {
			t.Errorf("get range %q: err %v, want ErrNotFound", name, err)
		}
		if _, err := b.GetRange(ctx, name, 0, 0); !bucket.IsNotFound(err) {
			t.Errorf("empty get range %q: err %v, want ErrNotFound", name, err)
		}
		if _, err := b.Attributes(ctx, name); !errors.Is(err, bucket.ErrNotFound) {
			t.Errorf("attributes %q: err %v, want ErrNotFound", name, err)
		}
		if ok, err := b.Exists(ctx, name); ok || err != nil {
			t.Errorf("exists %q = %v, %v; want false, nil", name, ok, err)
		}
	}
}

func testZeroLength(t *testing.T, b bucket.Bucket) {
	ctx := t.Context()
	Upload(t, b, "tenant-1/empty", nil)
	if got := Get(t, b, "tenant-1/empty"); len(got) != 0 {
		t.Errorf("got %d bytes, want 0", len(got))
	}
	for _, r := range [][2]int64{{0, -1}, {0, 10}, {5, 1}, {0, 0}} {
		if got := GetRange(t, b, "tenant-1/empty", r[0], r[1]); len(got) != 0 {
			t.Errorf("range %v: got %d bytes, want 0", r, len(got))
		}
	}
	attrs, err := b.Attributes(ctx, "tenant-1/empty")
	if err != nil || attrs.Size != 0 {
		t.Errorf("attributes = %+v, %v; want size 0", attrs, err)
	}
	if ok, err := b.Exists(ctx, "tenant-1/empty"); !ok || err != nil {
		t.Errorf("exists = %v, %v; want true, nil", ok, err)
	}
}

func testGetRange(t *testing.T, b bucket.Bucket) {
	content := []byte("0123456789abcdefghij") // 20 bytes
	Upload(t, b, "tenant-1/range", content)
	for _, tc := range []struct {
		off, length int64
		want        string
	}{
		{0, 5, "01234"},
		{3, 4, "3456"},
		{0, -1, string(content)},
		{10, -1, "abcdefghij"},
		{19, 1, "j"},
		{19, 100, "j"},
		{15, 10, "fghij"},
		{0, 20, string(content)},
		{0, 0, ""},
		{7, 0, ""},
		{20, 5, ""},
		{20, -1, ""},
		{21, 3, ""},
		{1 << 40, 3, ""},
	} {
		if got := string(GetRange(t, b, "tenant-1/range", tc.off, tc.length)); got != tc.want {
			t.Errorf("GetRange(%d, %d) = %q, want %q", tc.off, tc.length, got, tc.want)
		}
	}
	if _, err := b.GetRange(t.Context(), "tenant-1/range", -1, 2); err == nil {
		t.Error("GetRange with a negative offset succeeded")
	}
}

// unsizedReader hides everything but Read, so that no provider can learn
// the length in advance.
type unsizedReader struct{ r io.Reader }

func (u unsizedReader) Read(p []byte) (int, error) { return u.r.Read(p) }

func testLarge(t *testing.T, b bucket.Bucket, size int64) {
	content := Random(1, size)
	if err := b.Upload(t.Context(), "tenant-1/large", unsizedReader{bytes.NewReader(content)}); err != nil {
		t.Fatalf("streaming upload of %d bytes: %v", size, err)
	}
	got := Get(t, b, "tenant-1/large")
	if len(got) != len(content) || sha256.Sum256(got) != sha256.Sum256(content) {
		t.Fatalf("got %d bytes (sha256 %x), want %d bytes (sha256 %x)", len(got), sha256.Sum256(got), len(content), sha256.Sum256(content))
	}
	attrs, err := b.Attributes(t.Context(), "tenant-1/large")
	if err != nil || attrs.Size != size {
		t.Fatalf("attributes = %+v, %v; want size %d", attrs, err, size)
	}
	for _, r := range [][2]int64{{5<<20 - 100, 200}, {size / 2, 1 << 20}, {size - 10, 100}, {65535, 2}, {1, 65536 * 3}} {
		want := content[r[0]:min(r[0]+r[1], size)]
		if got := GetRange(t, b, "tenant-1/large", r[0], r[1]); !bytes.Equal(got, want) {
			t.Errorf("GetRange(%d, %d): got %d bytes differing from the %d uploaded", r[0], r[1], len(got), len(want))
		}
	}
}

func testIter(t *testing.T, b bucket.Bucket) {
	names := []string{
		"tenant-1/a", "tenant-1/b-c", "tenant-1/b/x", "tenant-1/b/y/z", "tenant-1/b0",
		"tenant-1/c/d", "tenant-2/only", "tenant-10/x",
	}
	for _, n := range slices.Backward(names) {
		Upload(t, b, n, []byte(n))
	}
	for _, tc := range []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"", false, []string{"tenant-1/", "tenant-10/", "tenant-2/"}},
		{"tenant-1", false, []string{"tenant-1/a", "tenant-1/b-c", "tenant-1/b/", "tenant-1/b0", "tenant-1/c/"}},
		{"tenant-1/", false, []string{"tenant-1/a", "tenant-1/b-c", "tenant-1/b/", "tenant-1/b0", "tenant-1/c/"}},
		{"tenant-1/b", false, []string{"tenant-1/b/x", "tenant-1/b/y/"}},
		{"tenant-1", true, []string{"tenant-1/a", "tenant-1/b-c", "tenant-1/b/x", "tenant-1/b/y/z", "tenant-1/b0", "tenant-1/c/d"}},
		{"", true, []string{"tenant-1/a", "tenant-1/b-c", "tenant-1/b/x", "tenant-1/b/y/z", "tenant-1/b0", "tenant-1/c/d", "tenant-10/x", "tenant-2/only"}},
		{"tenant-1/b/y/z", false, nil},
		{"tenant-1/nothing", false, nil},
		{"tenant-1/nothing", true, nil},
		{"tenant-3", true, nil},
	} {
		if got := List(t, b, tc.dir, tc.recursive); !slices.Equal(got, tc.want) {
			t.Errorf("Iter(%q, recursive=%v) = %q, want %q", tc.dir, tc.recursive, got, tc.want)
		}
	}
	if err := b.Iter(t.Context(), "tenant-1/../x", bucket.IterOptions{}, func(string) error { return nil }); !errors.Is(err, bucket.ErrInvalidName) {
		t.Errorf("Iter of an invalid dir: err %v, want ErrInvalidName", err)
	}
}

func testIterStop(t *testing.T, b bucket.Bucket) {
	for i := range 5 {
		Upload(t, b, fmt.Sprintf("tenant-1/o%d", i), []byte("x"))
	}
	stop := errors.New("stop")
	var seen []string
	for _, recursive := range []bool{false, true} {
		seen = seen[:0]
		err := b.Iter(t.Context(), "tenant-1", bucket.IterOptions{Recursive: recursive}, func(n string) error {
			seen = append(seen, n)
			if len(seen) == 2 {
				return stop
			}
			return nil
		})
		if err != stop || !slices.Equal(seen, []string{"tenant-1/o0", "tenant-1/o1"}) {
			t.Errorf("recursive=%v: err %v after %q; want the callback's error after two names", recursive, err, seen)
		}
	}
}

func testDelete(t *testing.T, b bucket.Bucket) {
	ctx := t.Context()
	Upload(t, b, "tenant-1/keep", []byte("k"))
	Upload(t, b, "tenant-1/sub/dir/gone", []byte("g"))
	if err := b.Delete(ctx, "tenant-1/sub/dir/gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "tenant-1/sub/dir/gone"); !bucket.IsNotFound(err) {
		t.Errorf("get after delete: err %v, want ErrNotFound", err)
	}
	if got := List(t, b, "tenant-1", false); !slices.Equal(got, []string{"tenant-1/keep"}) {
		t.Errorf("listing after delete = %q; the emptied directory must disappear", got)
	}
	for _, name := range []string{"tenant-1/sub/dir/gone", "tenant-1/never", "tenant-1/keep/below"} {
		if err := b.Delete(ctx, name); err != nil {
			t.Errorf("delete of missing %q: %v, want nil", name, err)
		}
	}
	if got := string(Get(t, b, "tenant-1/keep")); got != "k" {
		t.Errorf("unrelated object changed: %q", got)
	}
	Upload(t, b, "tenant-1/sub/dir/gone", []byte("again"))
	if got := string(Get(t, b, "tenant-1/sub/dir/gone")); got != "again" {
		t.Errorf("re-created object: got %q", got)
	}
}

// InvalidNames are names every Bucket must reject.
var InvalidNames = []string{"", "/abs", "tenant-1//x", "tenant-1/../x", "..", "tenant-1/./x", "tenant-1/x/", "../../etc/passwd", "tenant-1/a\x00b", strings.Repeat("a", bucket.MaxNameLength+1)}

func testInvalidNames(t *testing.T, b bucket.Bucket) {
	ctx := t.Context()
	for _, name := range InvalidNames {
		checks := map[string]error{
			"upload": b.Upload(ctx, name, strings.NewReader("x")),
			"delete": b.Delete(ctx, name),
		}
		_, checks["get"] = b.Get(ctx, name)
		_, checks["get range"] = b.GetRange(ctx, name, 0, 1)
		_, checks["exists"] = b.Exists(ctx, name)
		_, checks["attributes"] = b.Attributes(ctx, name)
		for op, err := range checks {
			if !errors.Is(err, bucket.ErrInvalidName) {
				t.Errorf("%s %q: err %v, want ErrInvalidName", op, name, err)
			}
		}
	}
	if got := List(t, b, "", true); len(got) != 0 {
		t.Errorf("invalid names left objects behind: %q", got)
	}
}

// failingReader returns some bytes and then an error.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

func testFailedUpload(t *testing.T, b bucket.Bucket) {
	Upload(t, b, "tenant-1/obj", []byte("old"))
	boom := errors.New("source broke")
	if err := b.Upload(t.Context(), "tenant-1/obj", &failingReader{n: 1000, err: boom}); err == nil {
		t.Fatal("upload from a failing reader succeeded")
	}
	if got := string(Get(t, b, "tenant-1/obj")); got != "old" {
		t.Errorf("after a failed upload got %q, want the old object", got)
	}
	if err := b.Upload(t.Context(), "tenant-1/new", &failingReader{n: 10, err: boom}); err == nil {
		t.Fatal("upload from a failing reader succeeded")
	}
	if ok, err := b.Exists(t.Context(), "tenant-1/new"); ok || err != nil {
		t.Errorf("a failed upload left an object: exists = %v, %v", ok, err)
	}
	if got := List(t, b, "", true); !slices.Equal(got, []string{"tenant-1/obj"}) {
		t.Errorf("after failed uploads the bucket holds %q", got)
	}
}

func testCanceled(t *testing.T, b bucket.Bucket) {
	Upload(t, b, "tenant-1/obj", []byte("x"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Upload(ctx, "tenant-1/other", strings.NewReader("y")); err == nil {
		t.Error("upload with a canceled context succeeded")
	}
	if _, err := b.Attributes(ctx, "tenant-1/obj"); err == nil {
		t.Error("attributes with a canceled context succeeded")
	}
	if err := b.Iter(ctx, "tenant-1", bucket.IterOptions{}, func(string) error { return nil }); err == nil {
		t.Error("iter with a canceled context succeeded")
	}
}

func testConcurrent(t *testing.T, b bucket.Bucket) {
	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				name := fmt.Sprintf("tenant-%d/w/%d", w%3, w*rounds+i)
				if err := roundTrip(t.Context(), b, name, Random(uint64(w*rounds+i), int64(100+w*1000+i))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := List(t, b, "", true); len(got) != 0 {
		t.Errorf("objects left after every worker deleted its own: %q", got)
	}
}

// roundTrip uploads, reads back, reads a range, and deletes one object.
func roundTrip(ctx context.Context, b bucket.Bucket, name string, content []byte) error {
	if err := b.Upload(ctx, name, bytes.NewReader(content)); err != nil {
		return err
	}
	got, err := readAll(b.Get(ctx, name))
	if err != nil || !bytes.Equal(got, content) {
		return fmt.Errorf("%s: read back %d bytes, err %v; want %d bytes", name, len(got), err, len(content))
	}
	got, err = readAll(b.GetRange(ctx, name, 50, 30))
	if err != nil || !bytes.Equal(got, content[50:80]) {
		return fmt.Errorf("%s: range read %d bytes, err %v", name, len(got), err)
	}
	return b.Delete(ctx, name)
}

func readAll(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// testConcurrentReplace checks atomic replacement: while one goroutine keeps
// replacing an object, readers see one whole version or the other.
func testConcurrentReplace(t *testing.T, b bucket.Bucket) {
	versions := [][]byte{bytes.Repeat([]byte("a"), 70_000), bytes.Repeat([]byte("b"), 150_000)}
	Upload(t, b, "tenant-1/hot", versions[0])
	ctx := t.Context()
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() {
		defer close(done)
		for i := range 10 {
			if err := b.Upload(ctx, "tenant-1/hot", bytes.NewReader(versions[(i+1)%2])); err != nil {
				errs <- err
				return
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := readAll(b.Get(ctx, "tenant-1/hot"))
				if err != nil || !(bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1])) {
					errs <- fmt.Errorf("reader saw %d bytes, err %v: neither version", len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
