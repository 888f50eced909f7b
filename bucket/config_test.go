package bucket_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/bucket"
)

const secret = "very-secret-value-42"

func s3Config() bucket.Config {
	return bucket.Config{Backend: "s3", S3: bucket.S3Config{Endpoint: "s3.example.com", BucketName: "b",
		AccessKeyID: "AKID", SecretAccessKey: secret, PartSize: bucket.MinPartSize}}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(c *bucket.Config)
		wantErr string // empty: valid
	}{
		{"valid s3", func(c *bucket.Config) {}, ""},
		{"valid filesystem", func(c *bucket.Config) {
			*c = bucket.Config{Backend: "filesystem", Filesystem: bucket.FilesystemConfig{Dir: "x"}}
		}, ""},
		{"filesystem without dir", func(c *bucket.Config) { *c = bucket.Config{Backend: "filesystem"} }, "-blocks-storage.filesystem.dir"},
		{"unknown backend", func(c *bucket.Config) { c.Backend = "gcs" }, "-blocks-storage.backend"},
		{"no endpoint", func(c *bucket.Config) { c.S3.Endpoint = "" }, "-blocks-storage.s3.endpoint"},
		{"endpoint with scheme", func(c *bucket.Config) { c.S3.Endpoint = "https://s3.example.com" }, "without a scheme"},
		{"endpoint with path", func(c *bucket.Config) { c.S3.Endpoint = "s3.example.com/b" }, "without a path"},
		{"no bucket", func(c *bucket.Config) { c.S3.BucketName = "" }, "-blocks-storage.s3.bucket-name"},
		{"key without secret", func(c *bucket.Config) { c.S3.SecretAccessKey = "" }, "set together"},
		{"secret without key", func(c *bucket.Config) { c.S3.AccessKeyID = "" }, "set together"},
		{"credentials from environment", func(c *bucket.Config) { c.S3.AccessKeyID, c.S3.SecretAccessKey = "", "" }, ""},
		{"CA file over plain HTTP", func(c *bucket.Config) { c.S3.Insecure, c.S3.TLSCAFile = true, "ca.pem" }, "-blocks-storage.s3.insecure"},
		{"CA file and skip verify", func(c *bucket.Config) { c.S3.TLSCAFile, c.S3.TLSInsecureSkipVerify = "ca.pem", true }, "set one of them"},
		{"small parts", func(c *bucket.Config) { c.S3.PartSize = 1 << 20 }, "-blocks-storage.s3.part-size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s3Config()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("error reveals the secret: %v", err)
			}
		})
	}
}

func TestConfigFlags(t *testing.T) {
	var c bucket.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=minio:9000",
		"-blocks-storage.s3.bucket-name=metrics", "-blocks-storage.s3.access-key-id=AKID",
		"-blocks-storage.s3.secret-access-key=" + secret, "-blocks-storage.s3.insecure",
		"-blocks-storage.s3.force-path-style", "-blocks-storage.s3.region=eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := bucket.S3Config{Endpoint: "minio:9000", BucketName: "metrics", Region: "eu-west-1", AccessKeyID: "AKID",
		SecretAccessKey: secret, Insecure: true, ForcePathStyle: true, PartSize: 16 << 20}
	if c.Backend != "s3" || c.S3 != want {
		t.Fatalf("parsed %+v, want backend s3 and %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()
	fs.VisitAll(func(f *flag.Flag) { fmt.Fprintf(&help, "%s=%s\n", f.Name, f.Value) })
	if strings.Contains(help.String(), secret) {
		t.Fatalf("flag output reveals the secret:\n%s", help.String())
	}
}

func TestSecretRedacted(t *testing.T) {
	c := s3Config()
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"String": c.String(), "%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c.S3),
		"%s secret": fmt.Sprintf("%s", c.S3.SecretAccessKey), "json": string(j), "yaml": string(y),
	} {
		if strings.Contains(out, secret) || !strings.Contains(out, "redacted") {
			t.Errorf("%s output does not redact the secret: %s", name, out)
		}
	}
	if got := bucket.Secret("").String(); got != "" {
		t.Errorf("empty secret prints as %q", got)
	}
}
