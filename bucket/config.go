package bucket

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Backends are the values -blocks-storage.backend accepts.
const (
	BackendFilesystem = "filesystem"
	BackendS3         = "s3"
)

// MinPartSize is the smallest multipart upload part S3 accepts.
const MinPartSize = 5 << 20

// Secret is a string that never shows in logs, errors, flag defaults,
// YAML, JSON or %v output: all of them print "<redacted>" (or nothing when
// it is empty). Convert it with string(s) where the value is needed.
type Secret string

const redacted = "<redacted>"

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString redacts the secret in %#v output.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// MarshalYAML redacts the secret in YAML output (the /config page).
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON redacts the secret in JSON output.
func (s Secret) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", s.String()), nil }

// Set implements flag.Value.
func (s *Secret) Set(v string) error { *s = Secret(v); return nil }

// Config selects and configures the bucket provider.
type Config struct {
	Backend    string           `yaml:"backend"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	S3         S3Config         `yaml:"s3"`
}

// FilesystemConfig configures the filesystem provider.
type FilesystemConfig struct {
	Dir string `yaml:"dir"`
}

// S3Config configures the S3 provider.
type S3Config struct {
	Endpoint              string `yaml:"endpoint"`
	BucketName            string `yaml:"bucket_name"`
	Region                string `yaml:"region"`
	AccessKeyID           string `yaml:"access_key_id"`
	SecretAccessKey       Secret `yaml:"secret_access_key"`
	Insecure              bool   `yaml:"insecure"`
	ForcePathStyle        bool   `yaml:"force_path_style"`
	TLSCAFile             string `yaml:"tls_ca_file"`
	TLSInsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify"`
	PartSize              uint64 `yaml:"part_size"`
}

// RegisterFlags registers the -blocks-storage.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Backend, "blocks-storage.backend", BackendFilesystem, "Object storage backend: filesystem or s3.")
	fs.StringVar(&c.Filesystem.Dir, "blocks-storage.filesystem.dir", "", "Directory of the filesystem backend. Empty means <data.dir>/bucket.")
	p := "blocks-storage.s3."
	fs.StringVar(&c.S3.Endpoint, p+"endpoint", "", "S3 endpoint as host[:port], without a scheme (for example s3.eu-west-1.amazonaws.com or minio:9000).")
	fs.StringVar(&c.S3.BucketName, p+"bucket-name", "", "S3 bucket name. FluxPulse does not create it.")
	fs.StringVar(&c.S3.Region, p+"region", "", "S3 region. Empty asks the endpoint for the bucket's region.")
	fs.StringVar(&c.S3.AccessKeyID, p+"access-key-id", "", "S3 access key ID. If it and the secret are empty, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are read from the environment.")
	fs.Var(&c.S3.SecretAccessKey, p+"secret-access-key", "S3 secret access key. Prefer the AWS_SECRET_ACCESS_KEY environment variable: flags show in process listings.")
	fs.BoolVar(&c.S3.Insecure, p+"insecure", false, "Talk plain HTTP to the S3 endpoint instead of HTTPS.")
	fs.BoolVar(&c.S3.ForcePathStyle, p+"force-path-style", false, "Address the bucket as endpoint/bucket (path style) instead of letting the client choose (virtual-host style on AWS).")
	fs.StringVar(&c.S3.TLSCAFile, p+"tls-ca-file", "", "PEM file of CA certificates trusted for the S3 endpoint, in addition to the system's.")
	fs.BoolVar(&c.S3.TLSInsecureSkipVerify, p+"tls-insecure-skip-verify", false, "Do not verify the S3 endpoint's TLS certificate. Unsafe: for tests only.")
	fs.Uint64Var(&c.S3.PartSize, p+"part-size", 16<<20, "Part size in bytes of multipart uploads; memory use per upload is about this much. At least 5 MiB.")
}

// Validate checks the configuration of the chosen backend.
func (c Config) Validate() error {
	switch c.Backend {
	case BackendFilesystem:
		if c.Filesystem.Dir == "" {
			return errors.New("-blocks-storage.filesystem.dir must be set for the filesystem backend")
		}
		return nil
	case BackendS3:
		return c.S3.Validate()
	}
	return fmt.Errorf("-blocks-storage.backend must be %s or %s, got %q", BackendFilesystem, BackendS3, c.Backend)
}

// Validate checks the S3 settings.
func (c S3Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("-blocks-storage.s3.endpoint must be set for the s3 backend")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("-blocks-storage.s3.endpoint=%q must be host[:port] without a scheme; use -blocks-storage.s3.insecure for plain HTTP", c.Endpoint)
	case strings.ContainsAny(c.Endpoint, "/?#"):
		return fmt.Errorf("-blocks-storage.s3.endpoint=%q must be host[:port] without a path", c.Endpoint)
	case c.BucketName == "":
		return errors.New("-blocks-storage.s3.bucket-name must be set for the s3 backend")
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		return errors.New("-blocks-storage.s3.access-key-id and -blocks-storage.s3.secret-access-key must be set together (or both left empty to use the environment)")
	case c.Insecure && (c.TLSCAFile != "" || c.TLSInsecureSkipVerify):
		return errors.New("-blocks-storage.s3.tls-ca-file and -blocks-storage.s3.tls-insecure-skip-verify need TLS, but -blocks-storage.s3.insecure switches it off")
	case c.TLSCAFile != "" && c.TLSInsecureSkipVerify:
		return errors.New("-blocks-storage.s3.tls-ca-file has no effect with -blocks-storage.s3.tls-insecure-skip-verify; set one of them")
	case c.PartSize < MinPartSize:
		return fmt.Errorf("-blocks-storage.s3.part-size=%d is below the S3 minimum of %d bytes", c.PartSize, MinPartSize)
	}
	return nil
}

// String describes the configuration with the secret redacted.
func (c Config) String() string {
	return fmt.Sprintf("%+v", struct {
		Backend    string
		Filesystem FilesystemConfig
		S3         S3Config
	}{c.Backend, c.Filesystem, c.S3})
}

// New returns the configured provider, instrumented with metrics registered
// on reg (nil registers nothing). It validates cfg; it does not contact any
// server.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		b   Bucket
		err error
	)
	switch cfg.Backend {
	case BackendFilesystem:
		b, err = NewFilesystem(cfg.Filesystem.Dir)
	case BackendS3:
		b, err = NewS3(cfg.S3, logger)
	}
	if err != nil {
		return nil, err
	}
	ib, err := Instrument(b, cfg.Backend, reg)
	if err != nil {
		return nil, errors.Join(err, b.Close())
	}
	return ib, nil
}
