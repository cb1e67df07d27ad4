// Package devcert makes a development certificate authority and the
// certificates it signs, with crypto/x509 only (no openssl): the HTTPS mode
// of `make run` and the TLS tests use it. Nothing here is meant for
// production certificates.
package devcert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that can sign certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// Lifetimes of what NewCA and Issue make.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 397 * 24 * time.Hour // what browsers and most clients accept
)

// NewCA makes a CA with a new P-256 key.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"registry-gateway development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

// LoadCA reads a CA written by WriteCA (or any PEM certificate and its
// PKCS#8 key).
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || pair.Leaf == nil || !pair.Leaf.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate with a signing key", certFile)
	}
	return &CA{Cert: pair.Leaf, CertPEM: pemBlock("CERTIFICATE", pair.Leaf.Raw), key: signer}, nil
}

// WriteCA writes the CA certificate (mode 0644) and its key (0600).
func (ca *CA) WriteCA(certFile, keyFile string) error {
	keyPEM, err := keyPEM(ca.key)
	if err != nil {
		return err
	}
	return writePair(certFile, ca.CertPEM, keyFile, keyPEM)
}

// Pool is a certificate pool holding only the CA: what a client trusts.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Pair is a certificate signed by the CA and its private key, in PEM.
type Pair struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
}

// TLS is the pair as a tls.Certificate.
func (p *Pair) TLS() (tls.Certificate, error) { return tls.X509KeyPair(p.CertPEM, p.KeyPEM) }

// Write writes the certificate (0644) and the key (0600).
func (p *Pair) Write(certFile, keyFile string) error {
	return writePair(certFile, p.CertPEM, keyFile, p.KeyPEM)
}

// Server issues a server certificate for hosts (DNS names or IP
// addresses), the first being its common name.
func (ca *CA) Server(hosts ...string) (*Pair, error) {
	if len(hosts) == 0 {
		return nil, errors.New("devcert: a server certificate needs a host")
	}
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: hosts[0]}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl)
}

// Client issues a client certificate (mTLS) named commonName.
func (ca *CA) Client(commonName string) (*Pair, error) {
	return ca.issue(&x509.Certificate{Subject: pkix.Name{CommonName: commonName}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

func (ca *CA) issue(tmpl *x509.Certificate) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(leafValidity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Pair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: kp, Cert: cert}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: der})
	return b.Bytes()
}

func writePair(certFile string, certPEM []byte, keyFile string, keyPEM []byte) error {
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, certPEM, 0o644)
}

// Files are the development TLS files in one directory, as `make run TLS=1`
// lays them out. The CA certificate sits alone in its own directory, so
// that the directory serves as is as skopeo's --cert-dir and as the
// content of docker's /etc/docker/certs.d/<host:port>/.
type Files struct {
	Dir                   string
	CACert, CAKey         string // dev-ca/ca.crt, dev-ca.key
	ServerCert, ServerKey string // localhost.crt, localhost.key: localhost, 127.0.0.1, ::1
	ClientCert, ClientKey string // gateway-client.crt, gateway-client.key: the gateway's mTLS client
	CA                    *CA
	// Generated lists the files Ensure wrote.
	Generated []string
}

// ServerHosts are the names the development server certificate is for.
var ServerHosts = []string{"localhost", "127.0.0.1", "::1"}

// renewBefore: Ensure reissues a certificate that expires sooner.
const renewBefore = 30 * 24 * time.Hour

// Ensure makes the development CA and certificates under dir, keeping
// those already there while they are signed by the CA and valid for
// another 30 days.
func Ensure(dir string) (*Files, error) {
	f := &Files{
		Dir:    dir,
		CACert: filepath.Join(dir, "dev-ca", "ca.crt"), CAKey: filepath.Join(dir, "dev-ca.key"),
		ServerCert: filepath.Join(dir, "localhost.crt"), ServerKey: filepath.Join(dir, "localhost.key"),
		ClientCert: filepath.Join(dir, "gateway-client.crt"), ClientKey: filepath.Join(dir, "gateway-client.key"),
	}
	if err := os.MkdirAll(filepath.Dir(f.CACert), 0o755); err != nil {
		return nil, err
	}
	ca, err := LoadCA(f.CACert, f.CAKey)
	if err != nil {
		if _, serr := os.Stat(f.CACert); serr == nil {
			if _, serr := os.Stat(f.CAKey); serr == nil {
				return nil, fmt.Errorf("development CA: %w (remove %s and %s to make a new one)", err, f.CACert, f.CAKey)
			}
		}
		if ca, err = NewCA("registry-gateway development CA"); err != nil {
			return nil, err
		}
		if err := ca.WriteCA(f.CACert, f.CAKey); err != nil {
			return nil, err
		}
		f.Generated = append(f.Generated, f.CACert, f.CAKey)
	}
	f.CA = ca
	for _, leaf := range []struct {
		cert, key string
		issue     func() (*Pair, error)
	}{
		{f.ServerCert, f.ServerKey, func() (*Pair, error) { return ca.Server(ServerHosts...) }},
		{f.ClientCert, f.ClientKey, func() (*Pair, error) { return ca.Client("registry-gateway") }},
	} {
		if ca.signed(leaf.cert, leaf.key) {
			continue
		}
		p, err := leaf.issue()
		if err != nil {
			return nil, err
		}
		if err := p.Write(leaf.cert, leaf.key); err != nil {
			return nil, err
		}
		f.Generated = append(f.Generated, leaf.cert, leaf.key)
	}
	return f, nil
}

// signed says whether the pair in the files loads, is signed by ca and
// stays valid for renewBefore.
func (ca *CA) signed(certFile, keyFile string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || pair.Leaf == nil {
		return false
	}
	return pair.Leaf.CheckSignatureFrom(ca.Cert) == nil && time.Until(pair.Leaf.NotAfter) > renewBefore
}
