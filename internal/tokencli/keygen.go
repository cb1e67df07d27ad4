package tokencli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

// The files keygen writes in its directory. The names are what the demo
// configuration and certs/README.md refer to.
const (
	KeyFile  = "token.key" // private key, PKCS#8 PEM, mode 0600: the token service only
	CertFile = "token.crt" // self-signed certificate: x5c header, a stock registry's rootcertbundle
	PubFile  = "token.pub" // public key, PEM: the gateway's static keys
	JWKSFile = "jwks.json" // JWKS with the thumbprint as kid: a stock registry's `jwks`, the gateway
	rsaBits  = 3072        // -rsa; 2048 is the floor pkg/auth accepts
	certCN   = "registry-gateway token signer"
	// NextName is the base name keygen -next uses instead of "token": the
	// key a rotation switches to, written beside the current one.
	NextName = "next"
)

// fileNames are the four files of a key named base: token.key, token.crt,
// token.pub, jwks.json for the current key; next.key, …, next.jwks.json.
func fileNames(base string) [4]string {
	if base == "" || base == "token" {
		return [4]string{KeyFile, CertFile, PubFile, JWKSFile}
	}
	return [4]string{base + ".key", base + ".crt", base + ".pub", base + "." + JWKSFile}
}

// KeygenOptions are the options of the keygen command.
type KeygenOptions struct {
	Dir   string
	RSA   bool
	Force bool
	// Name is the base name of the files: "token" (the default) or
	// NextName for the next key of a rotation.
	Name string
	// Validity of the certificate; default 10 years, because an expired
	// certificate in a registry's rootcertbundle refuses every token.
	Validity time.Duration
	// Now is the start of the certificate's validity; default time.Now.
	Now func() time.Time
}

// KeygenResult says what Keygen wrote.
type KeygenResult struct {
	Files []string // paths written, key first
	KeyID string
	Alg   string
}

// ErrKeyExists is returned by Keygen when the key is there and Force is off.
var ErrKeyExists = errors.New("signing key already exists")

// Keygen writes a new signing key with its certificate, public key and JWKS
// into opts.Dir. devstack calls it to create development keys on first run.
func Keygen(opts KeygenOptions) (*KeygenResult, error) {
	if opts.Dir == "" {
		return nil, errors.New("keygen: no directory")
	}
	if opts.Validity <= 0 {
		opts.Validity = 10 * 365 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	names := fileNames(opts.Name)
	keyPath := filepath.Join(opts.Dir, names[0])
	if !opts.Force {
		if _, err := os.Stat(keyPath); err == nil {
			return nil, fmt.Errorf("%w: %s (pass -force to replace it and every token it signed stops verifying)", ErrKeyExists, keyPath)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}

	signer, err := newSigner(opts.RSA)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, err
	}
	certDER, err := selfSign(signer, opts.Now(), opts.Validity)
	if err != nil {
		return nil, err
	}
	jwks, err := auth.NewJWKS(signer.Public())
	if err != nil {
		return nil, err
	}
	jwksJSON, err := json.MarshalIndent(jwks, "", "  ")
	if err != nil {
		return nil, err
	}
	key, err := auth.NewSigningKey(signer, nil)
	if err != nil {
		return nil, err
	}

	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{names[0], pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{names[1], pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644},
		{names[2], pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644},
		{names[3], append(jwksJSON, '\n'), 0o644},
	}
	res := &KeygenResult{KeyID: key.KeyID, Alg: key.Method.Alg()}
	for _, f := range files {
		p := filepath.Join(opts.Dir, f.name)
		if err := writeFileAtomic(p, f.data, f.mode); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, p)
	}
	return res, nil
}

// newSigner makes a P-256 key whose coordinates both have a non-zero
// leading byte: distribution computes the thumbprint of a P-256 key from
// unpadded coordinates, so for the other ~1/128 of keys its kid differs from
// the RFC 7638 one that we put in tokens and the JWKS.
func newSigner(useRSA bool) (crypto.Signer, error) {
	if useRSA {
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		if fullWidth(k) {
			return k, nil
		}
	}
}

// fullWidth reports whether both coordinates of k need all 32 bytes.
func fullWidth(k *ecdsa.PrivateKey) bool {
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		return false
	}
	raw := pub.Bytes() // 0x04 || X || Y
	return raw[1] != 0 && raw[33] != 0
}

func selfSign(signer crypto.Signer, now time.Time, validity time.Duration) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: certCN},
		// Back-dated a little so that a registry with a slow clock accepts
		// a certificate made a moment ago.
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.Add(validity).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		// Its own root: a registry's rootcertbundle holds this very file.
		IsCA: true,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
}

// writeFileAtomic writes through a temporary file in the same directory, so
// that a reader never sees half a key and a replaced key gets the new mode
// (os.WriteFile keeps the mode of an existing file).
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (e *env) keygen(args []string) int {
	fs := e.newFlagSet("keygen", "[-dir DIR] [-next] [-rsa] [-force]")
	opts := KeygenOptions{Now: e.now}
	next := fs.Bool("next", false, "write the next key of a rotation beside the current one ("+NextName+".key, …)")
	fs.StringVar(&opts.Dir, "dir", "certs", "directory for the key files")
	fs.BoolVar(&opts.RSA, "rsa", false, fmt.Sprintf("make an RSA-%d key (RS256) instead of P-256 (ES256)", rsaBits))
	fs.BoolVar(&opts.Force, "force", false, "replace an existing key")
	fs.DurationVar(&opts.Validity, "validity", 10*365*24*time.Hour, "validity of the self-signed certificate")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "tokenserver keygen: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if *next {
		opts.Name = NextName
	}
	res, err := Keygen(opts)
	if err != nil {
		fmt.Fprintf(e.stderr, "tokenserver keygen: %v\n", err)
		return exitFail
	}
	st := e.style()
	fmt.Fprintf(e.stdout, "%s %s key, kid %s\n", st.green("Generated"), res.Alg, res.KeyID)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	what := []string{
		"private key, mode 0600: the token service's signing_key; keep it there",
		"certificate: the token service's signing_cert (x5c); a stock registry's rootcertbundle",
		"public key: the gateway's keys.public_keys, if it does not fetch keys.jwks_url",
		"JWKS: a stock registry's jwks; tokenserver inspect --jwks",
	}
	for i, f := range res.Files {
		fmt.Fprintf(tw, "  %s\t%s\n", f, what[i])
	}
	tw.Flush()
	if *next {
		fmt.Fprintf(e.stdout, "Rotation: add %s to the token service's publish_keys and roll it out; then see docs/accounts.md#key-rotation\n", res.Files[0])
	}
	return exitOK
}
