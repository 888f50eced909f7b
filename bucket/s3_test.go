package bucket_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
)

// TestS3TLSVerification checks that an untrusted certificate is refused
// unless its CA is configured or verification is switched off explicitly.
func TestS3TLSVerification(t *testing.T) {
	srv := buckettest.StartS3(t, true)
	srv.NewBucket(t) // test-1
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		change func(c *bucket.S3Config)
		wantOK bool
	}{
		{"untrusted certificate", func(c *bucket.S3Config) { c.TLSCAFile = "" }, false},
		{"plain HTTP to a TLS port", func(c *bucket.S3Config) { c.TLSCAFile, c.Insecure = "", true }, false},
		{"CA file", func(c *bucket.S3Config) {}, true},
		{"verification off", func(c *bucket.S3Config) { c.TLSCAFile, c.TLSInsecureSkipVerify = "", true }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srv.Config("test-1")
			tc.change(&cfg)
			b, err := bucket.NewS3(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Exists(ctx, "tenant-1/x")
			if tc.wantOK != (err == nil) {
				t.Fatalf("exists: err %v, want success %v", err, tc.wantOK)
			}
			if err != nil && strings.Contains(err.Error(), srv.SecretKey) {
				t.Fatalf("error reveals the secret: %v", err)
			}
		})
	}
}

// TestS3Credentials checks credentials from the environment and that a
// wrong secret fails without showing up in the error.
func TestS3Credentials(t *testing.T) {
	srv := buckettest.StartS3(t, false)
	srv.NewBucket(t)
	cfg := srv.Config("test-1")
	cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	b, err := bucket.NewS3(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	buckettest.Upload(t, b, "tenant-1/env", []byte("from env"))

	cfg = srv.Config("test-1")
	cfg.SecretAccessKey = "wrong-secret-value-123"
	b, err = bucket.NewS3(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Get(t.Context(), "tenant-1/env")
	if err == nil || bucket.IsNotFound(err) {
		t.Fatalf("get with a wrong secret: err %v, want an access error", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value-123") || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("error reveals a secret: %v", err)
	}
}

// TestS3StreamingUploadUsesParts checks that an upload of unknown length is
// cut into PartSize parts (the multipart ETag ends in "-<parts>") rather
// than buffered into minio-go's default 537 MiB part.
func TestS3StreamingUploadUsesParts(t *testing.T) {
	srv := buckettest.StartS3(t, false)
	b := srv.NewBucket(t)
	content := buckettest.Random(7, 11<<20)
	if err := b.Upload(t.Context(), "tenant-1/big", io.MultiReader(bytes.NewReader(content))); err != nil {
		t.Fatal(err)
	}
	client, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	oi, err := client.StatObject(t.Context(), "test-1", "tenant-1/big", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(oi.ETag, "-3") {
		t.Errorf("ETag %q: want a 3-part multipart upload (11 MiB in 5 MiB parts)", oi.ETag)
	}
}

func TestNewInstrumented(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b, err := bucket.New(bucket.Config{Backend: "filesystem", Filesystem: bucket.FilesystemConfig{Dir: t.TempDir()}}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buckettest.Upload(t, b, "tenant-1/a", []byte("0123456789"))
	if got := buckettest.GetRange(t, b, "tenant-1/a", 2, 3); string(got) != "234" {
		t.Fatalf("got %q", got)
	}
	_ = buckettest.Get(t, b, "tenant-1/a")
	if _, err := b.Get(t.Context(), "tenant-1/missing"); !bucket.IsNotFound(err) {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), "../x"); err == nil {
		t.Fatal("invalid name accepted")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		metric, op string
		want       float64
	}{
		{"fluxpulse_bucket_operations_total", "get", 3},
		{"fluxpulse_bucket_operations_total", "get_range", 1},
		{"fluxpulse_bucket_operations_total", "upload", 1},
		{"fluxpulse_bucket_operation_failures_total", "get", 1}, // the invalid name, not the missing object
		{"fluxpulse_bucket_read_bytes_total", "get", 10},
		{"fluxpulse_bucket_read_bytes_total", "get_range", 3},
		{"fluxpulse_bucket_written_bytes_total", "", 10},
		{"fluxpulse_bucket_operation_duration_seconds", "get", 3},
	} {
		if got := MetricValue(mfs, tc.metric, tc.op); got != tc.want {
			t.Errorf("%s{operation=%q} = %v, want %v", tc.metric, tc.op, got, tc.want)
		}
	}
}
