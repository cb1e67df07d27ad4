package tlsx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often a Reloader looks at its files.
const DefaultPollInterval = 5 * time.Second

// maxPEMBytes bounds what is read of a certificate or key file: a chain of
// a few certificates is a few KiB.
const maxPEMBytes = 1 << 20

// Reloader holds a certificate and key loaded from two PEM files and loads
// them again when their content changes. cert-manager, an ACME client or
// an operator renews the files in place; handshakes from then on present
// the new certificate, and connections already open are not touched. A new
// pair that does not load (half-written, mismatched, not PEM) is logged and
// the previous pair stays in use.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	cur atomic.Pointer[tls.Certificate]

	mu     sync.Mutex // serialises Check
	loaded [sha256.Size]byte
	failed string // what was last logged as broken, to log it once
}

// NewReloader loads the pair once; it fails if it does not load. interval
// is how often Run checks the files (DefaultPollInterval if zero).
func NewReloader(certFile, keyFile string, interval time.Duration, log *slog.Logger) (*Reloader, error) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log}
	certPEM, keyPEM, sum, err := r.read()
	if err != nil {
		return nil, err
	}
	pair, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	r.cur.Store(pair)
	r.loaded = sum
	return r, nil
}

// Run checks the files every interval until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.Check()
		}
	}
}

// Check loads the pair again if the files' content changed since the last
// load. A pair that does not load is logged (once for the same content)
// and returned; the previous pair stays in use.
func (r *Reloader) Check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, keyPEM, sum, err := r.read()
	if err == nil && sum == r.loaded {
		return nil
	}
	var pair *tls.Certificate
	if err == nil {
		pair, err = parsePair(certPEM, keyPEM)
	}
	if err != nil {
		// Logged once per broken content (or read error), not every
		// interval. The error names the files and what is wrong; it never
		// carries key material (crypto/tls's messages do not either).
		if seen := string(sum[:]) + err.Error(); seen != r.failed {
			r.log.Warn("TLS certificate files changed but do not load; still serving the previous certificate",
				slog.String("cert_file", r.certFile), slog.String("key_file", r.keyFile), slog.Any("error", err),
				slog.Time("serving_not_after", r.cur.Load().Leaf.NotAfter))
			r.failed = seen
		}
		return err
	}
	r.cur.Store(pair)
	r.loaded, r.failed = sum, ""
	r.log.Info("TLS certificate reloaded", slog.String("cert_file", r.certFile),
		slog.String("subject", pair.Leaf.Subject.String()), slog.Time("not_after", pair.Leaf.NotAfter))
	return nil
}

// Certificate is the pair in use.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load() }

// GetCertificate is tls.Config.GetCertificate for a server.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// GetClientCertificate is tls.Config.GetClientCertificate for a client
// that presents the pair (mTLS).
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// read reads both files, bounded, and hashes them together.
func (r *Reloader) read() (certPEM, keyPEM []byte, sum [sha256.Size]byte, err error) {
	if certPEM, err = readBounded(r.certFile); err != nil {
		return nil, nil, sum, err
	}
	if keyPEM, err = readBounded(r.keyFile); err != nil {
		return nil, nil, sum, err
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	h.Sum(sum[:0])
	return certPEM, keyPEM, sum, nil
}

// parsePair is tls.X509KeyPair with the leaf parsed, for the logs.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &pair, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxPEMBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	return b, nil
}
