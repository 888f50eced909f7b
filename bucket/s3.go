package bucket

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a Bucket in an S3-compatible object store, reached with minio-go.
type S3 struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	partSize uint64
}

var _ Bucket = (*S3)(nil)

// NewS3 returns a client for the bucket cfg names. It does not contact the
// server, and it never creates the bucket: see CreateBucket.
func NewS3(cfg S3Config, logger *slog.Logger) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tr, err := s3Transport(cfg, logger)
	if err != nil {
		return nil, err
	}
	creds := credentials.NewStaticV4(cfg.AccessKeyID, string(cfg.SecretAccessKey), "")
	if cfg.AccessKeyID == "" && cfg.SecretAccessKey == "" {
		creds = credentials.NewEnvAWS() // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
	}
	lookup := minio.BucketLookupAuto
	if cfg.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       !cfg.Insecure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 bucket: client for -blocks-storage.s3.endpoint=%s: %w", cfg.Endpoint, err)
	}
	return &S3{client: client, core: minio.Core{Client: client}, bucket: cfg.BucketName, partSize: cfg.PartSize}, nil
}

// s3Transport builds the HTTP transport: TLS 1.2 or later, verified against
// the system roots plus the optional CA file unless verification is
// explicitly switched off.
func s3Transport(cfg S3Config, logger *slog.Logger) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(!cfg.Insecure)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket: transport: %w", err)
	}
	if cfg.Insecure {
		return tr, nil
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("s3 bucket: read -blocks-storage.s3.tls-ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3 bucket: -blocks-storage.s3.tls-ca-file=%s holds no PEM certificate", cfg.TLSCAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if cfg.TLSInsecureSkipVerify {
		logger.Warn("TLS certificate verification of the S3 endpoint is switched off; anyone on the network path can read and change stored objects",
			"endpoint", cfg.Endpoint)
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	return tr, nil
}

// String names the bucket in logs.
func (b *S3) String() string { return "s3:" + b.client.EndpointURL().Host + "/" + b.bucket }

// Close does nothing: the client holds no resources that need releasing.
func (b *S3) Close() error { return nil }

// CreateBucket creates the bucket if it does not exist yet. FluxPulse never
// calls it on its own: buckets are provisioned by the operator (and by
// tests).
func (b *S3) CreateBucket(ctx context.Context) error {
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return fmt.Errorf("check bucket %q: %w", b.bucket, err)
	}
	if ok {
		return nil
	}
	if err := b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("create bucket %q: %w", b.bucket, err)
	}
	return nil
}

// Get streams the object.
func (b *S3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return b.GetRange(ctx, name, 0, -1)
}

// GetRange issues a ranged GET. S3 answers a range starting past the end
// with 416, which, as the object exists, is an empty result.
func (b *S3) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := checkRange(off); err != nil {
		return nil, err
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if length == 0 {
		if _, err := b.Attributes(ctx, name); err != nil {
			return nil, err
		}
		return emptyReader(), nil
	}
	var opts minio.GetObjectOptions
	var err error
	switch {
	case length > 0:
		err = opts.SetRange(off, off+length-1)
	case off > 0:
		err = opts.SetRange(off, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", name, err)
	}
	body, _, _, err := b.core.GetObject(ctx, b.bucket, name, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.InvalidRange {
			return emptyReader(), nil
		}
		return nil, b.objectError("get", name, err)
	}
	return body, nil
}

// objectError wraps err, mapping S3's "no such key" to ErrNotFound.
func (b *S3) objectError(op, name string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == minio.NoSuchKey || (resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket)) {
		return fmt.Errorf("%s %q: %w", op, name, ErrNotFound)
	}
	return fmt.Errorf("%s %q in bucket %q: %w", op, name, b.bucket, err)
}

// Exists issues a HEAD request.
func (b *S3) Exists(ctx context.Context, name string) (bool, error) {
	return existsByAttributes(ctx, b, name)
}

// Attributes issues a HEAD request.
func (b *S3) Attributes(ctx context.Context, name string) (Attributes, error) {
	if err := ValidateName(name); err != nil {
		return Attributes{}, err
	}
	oi, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return Attributes{}, b.objectError("stat", name, err)
	}
	return Attributes{Size: oi.Size, LastModified: oi.LastModified}, nil
}

// Upload streams r in multipart uploads of PartSize parts (a single PUT
// when r is shorter than one part), so memory use stays bounded by the part
// size whatever the object's length.
func (b *S3) Upload(ctx context.Context, name string, r io.Reader) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	_, err := b.client.PutObject(ctx, b.bucket, name, r, -1, minio.PutObjectOptions{PartSize: b.partSize})
	if err != nil {
		return b.objectError("upload", name, err)
	}
	return nil
}

// Delete removes the object; S3 reports success for a missing one too.
func (b *S3) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := b.client.RemoveObject(ctx, b.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if IsNotFound(b.objectError("delete", name, err)) {
			return nil
		}
		return b.objectError("delete", name, err)
	}
	return nil
}

// Iter lists with ListObjectsV2. A recursive listing streams, as S3
// returns keys in order. A delimited listing is gathered first: minio-go
// hands out each page's objects before its common prefixes, so they are
// sorted together before f sees them.
func (b *S3) Iter(ctx context.Context, dir string, opts IterOptions, f func(name string) error) error {
	prefix, err := DirPrefix(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var names []string
	for oi := range b.client.ListObjectsIter(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: opts.Recursive}) {
		if oi.Err != nil {
			return fmt.Errorf("list %q in bucket %q: %w", prefix, b.bucket, oi.Err)
		}
		if oi.Key == prefix || (opts.Recursive && strings.HasSuffix(oi.Key, "/")) {
			continue // a directory marker, not an object
		}
		if !opts.Recursive {
			names = append(names, oi.Key)
			continue
		}
		if err := f(oi.Key); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	slices.Sort(names)
	for _, n := range names {
		if err := f(n); err != nil {
			return err
		}
	}
	return nil
}
