package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// tlsConfig is the server's TLS flags.
type tlsConfig struct {
	certFile, keyFile, clientCAFile, minVersion string
}

func (c *tlsConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.certFile, "server.http-tls-cert-path", "", "Certificate (PEM) for HTTPS; with -server.http-tls-key-path, the HTTP listener serves TLS only.")
	fs.StringVar(&c.keyFile, "server.http-tls-key-path", "", "Private key (PEM) for HTTPS.")
	fs.StringVar(&c.clientCAFile, "server.http-tls-client-ca-path", "", "CA bundle (PEM); when set, clients must present a certificate it signed.")
	fs.StringVar(&c.minVersion, "server.tls-min-version", "VersionTLS12", "Lowest TLS version accepted: VersionTLS12 or VersionTLS13.")
}

func (c tlsConfig) enabled() bool { return c.certFile != "" || c.keyFile != "" }

// serverConfig loads the certificate and returns the listener's TLS
// configuration: TLS 1.2 at the least, whatever the flags say.
func (c tlsConfig) serverConfig() (*tls.Config, error) {
	if c.certFile == "" || c.keyFile == "" {
		return nil, errors.New("TLS needs both -server.http-tls-cert-path and -server.http-tls-key-path")
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}}
	switch c.minVersion {
	case "VersionTLS12":
		tc.MinVersion = tls.VersionTLS12
	case "VersionTLS13":
		tc.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("-server.tls-min-version must be VersionTLS12 or VersionTLS13, got %q", c.minVersion)
	}
	if c.clientCAFile != "" {
		pem, err := os.ReadFile(c.clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate found in %s", c.clientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
