// Package tlsx is the TLS both services serve with, in one place: TLS 1.2
// and later with Go's default cipher suites, a certificate that follows its
// files on disk (renewed in place by cert-manager or an ACME client)
// without a restart or a dropped connection, optional client certificates
// (mTLS), and the client side the gateway uses towards the token service.
//
// It knows nothing of either service; they embed ServerConfig in their
// configuration and wrap their listener with a Server.
package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// ServerConfig is the `tls` section of a service: with both files set the
// service serves HTTPS only.
type ServerConfig struct {
	// CertFile is the PEM certificate, followed by its intermediates.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the certificate.
	KeyFile string `yaml:"key_file"`
	// PollInterval is how often the files are checked for a renewal;
	// default 5s.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// minPollInterval keeps a typo (1ns) from reading the files in a loop.
const minPollInterval = 10 * time.Millisecond

// Enabled says whether the service serves HTTPS.
func (c ServerConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Problems lists what is wrong with c, as `tls.…` keys, without reading
// the files (NewServer does).
func (c ServerConfig) Problems() []error {
	errs := PairProblems("tls.cert_file", c.CertFile, "tls.key_file", c.KeyFile)
	if c.PollInterval < 0 || (c.PollInterval > 0 && c.PollInterval < minPollInterval) {
		errs = append(errs, fmt.Errorf("tls.poll_interval: %v is out of range (at least %v; 0 for the default %v)", c.PollInterval, minPollInterval, DefaultPollInterval))
	}
	return errs
}

// PairProblems checks a certificate and key configured under the keys
// certKey and keyKey: both or neither.
func PairProblems(certKey, certFile, keyKey, keyFile string) []error {
	if (certFile == "") != (keyFile == "") {
		return []error{fmt.Errorf("%s and %s: set both or neither", certKey, keyKey)}
	}
	return nil
}

// Server is the TLS side of a service's listener.
type Server struct {
	certs  *Reloader
	config *tls.Config
}

// NewServer loads the certificate pair of cfg and, with clientCAFile, the
// CAs whose client certificates are required (mTLS). Every file that does
// not load is reported.
func NewServer(cfg ServerConfig, clientCAFile string, log *slog.Logger) (*Server, error) {
	var errs []error
	certs, err := NewReloader(cfg.CertFile, cfg.KeyFile, cfg.PollInterval, log)
	if err != nil {
		errs = append(errs, fmt.Errorf("tls.cert_file, tls.key_file: %w", err))
	}
	var clientCAs *x509.CertPool
	if clientCAFile != "" {
		if clientCAs, err = LoadCertPool(clientCAFile); err != nil {
			errs = append(errs, fmt.Errorf("tls.client_ca_file: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Server{certs: certs, config: ServerTLSConfig(certs, clientCAs)}, nil
}

// ServerTLSConfig is the server configuration: TLS 1.2 or later, the
// certificate of certs at each handshake, and with clientCAs a client
// certificate signed by one of them required.
//
// Only HTTP/1.1 is offered: a blob stream then keeps the kernel's TCP
// back-pressure on a slow client, where HTTP/2's per-stream windows would
// buffer in the process (as for the gateway's upstream connections), and
// memory under many concurrent pulls stays what it is over plain HTTP.
func ServerTLSConfig(certs *Reloader, clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// Listener wraps ln: every connection accepted is a TLS server connection.
func (s *Server) Listener(ln net.Listener) net.Listener { return tls.NewListener(ln, s.config) }

// Run follows the certificate files until ctx ends.
func (s *Server) Run(ctx context.Context) { s.certs.Run(ctx) }

// NotAfter is the expiry of the certificate served now, in Unix seconds:
// a metric to alert on when renewals stop arriving.
func (s *Server) NotAfter() float64 { return float64(s.certs.Certificate().Leaf.NotAfter.Unix()) }

// Certificates is the reloader of the served pair.
func (s *Server) Certificates() *Reloader { return s.certs }

// ClientTLSConfig is a client configuration trusting roots (the system's
// when nil) and, with cert, presenting its pair when the server asks
// (mTLS).
func ClientTLSConfig(roots *x509.CertPool, cert *Reloader) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if cert != nil {
		c.GetClientCertificate = cert.GetClientCertificate
	}
	return c
}

// LoadCertPool reads a PEM file of CA certificates; a file without any is
// an error.
func LoadCertPool(path string) (*x509.CertPool, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}
