package buckettest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// S3Server is a versitygw S3 gateway serving a temporary directory, started
// for one test and stopped when it ends.
type S3Server struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	// CAFile is the PEM certificate the server presents (self-signed), set
	// when it serves TLS.
	CAFile string
	Dir    string

	buckets atomic.Int64
}

// StartS3 starts versitygw on a free loopback port, over TLS with a fresh
// self-signed certificate when tls is set, and waits until it answers.
func StartS3(t testing.TB, tls bool) *S3Server {
	t.Helper()
	bin := testbin.Versitygw.Path(t)
	s := &S3Server{
		Endpoint:  testbin.FreePort(t),
		AccessKey: "fluxpulse-test",
		SecretKey: "fluxpulse-test-secret-" + rand.Text(),
		Dir:       t.TempDir(),
	}
	scheme := "http"
	args := []string{"--port", s.Endpoint, "--health", "/health", "--quiet"}
	if tls {
		scheme = "https"
		certFile, keyFile := SelfSignedCert(t)
		s.CAFile = certFile
		args = append(args, "--cert", certFile, "--key", keyFile)
	}
	env := []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey}
	p := testbin.Start(t, bin, env, append(args, "posix", "--sidecar", t.TempDir(), s.Dir)...)
	client := s.httpClient(t)
	testbin.Eventually(t, 30*time.Second, func() error {
		if p.Exited() {
			t.Fatalf("versitygw exited:\n%s", p.Output())
		}
		resp, err := client.Get(scheme + "://" + s.Endpoint + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	})
	return s
}

// httpClient trusts the server's certificate, for the readiness probe.
func (s *S3Server) httpClient(t testing.TB) *http.Client {
	if s.CAFile == "" {
		return http.DefaultClient
	}
	pemBytes, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// Config returns a client configuration for bucketName on this server:
// path style, trusting the server's certificate, 5 MiB parts.
func (s *S3Server) Config(bucketName string) bucket.S3Config {
	return bucket.S3Config{
		Endpoint:        s.Endpoint,
		BucketName:      bucketName,
		Region:          "us-east-1",
		AccessKeyID:     s.AccessKey,
		SecretAccessKey: bucket.Secret(s.SecretKey),
		Insecure:        s.CAFile == "",
		ForcePathStyle:  true,
		TLSCAFile:       s.CAFile,
		PartSize:        bucket.MinPartSize,
	}
}

// NewBucket creates a fresh, empty bucket on the server and returns a
// client for it.
func (s *S3Server) NewBucket(t testing.TB) *bucket.S3 {
	t.Helper()
	name := fmt.Sprintf("test-%d", s.buckets.Add(1))
	b, err := bucket.NewS3(s.Config(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	return b
}

// SelfSignedCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost and its key into the test's temporary directory.
func SelfSignedCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "fluxpulse test S3"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	var sb strings.Builder
	if err := pem.Encode(&sb, &pem.Block{Type: typ, Bytes: der}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}
