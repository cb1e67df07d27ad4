package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestEnsure(t *testing.T) {
	dir := t.TempDir()
	f, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Generated) != 6 {
		t.Errorf("generated %v", f.Generated)
	}
	for _, key := range []string{f.CAKey, f.ServerKey, f.ClientKey} {
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", key, fi.Mode(), err)
		}
	}
	server, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.CA.Cert)
	for _, host := range ServerHosts {
		if _, err := server.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	client, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}

	// A second run keeps everything; a lost leaf is reissued by the same CA.
	again, err := Ensure(dir)
	if err != nil || len(again.Generated) != 0 {
		t.Fatalf("second run: %v, generated %v", err, again.Generated)
	}
	os.Remove(f.ServerKey)
	again, err = Ensure(dir)
	if err != nil || !slices.Equal(again.Generated, []string{f.ServerCert, f.ServerKey}) {
		t.Fatalf("after losing the server key: %v, generated %v", err, again.Generated)
	}
	if !again.CA.Cert.Equal(f.CA.Cert) {
		t.Error("the CA changed")
	}

	// A new CA (the old one removed) reissues the leaves it did not sign.
	os.Remove(f.CACert)
	os.Remove(f.CAKey)
	again, err = Ensure(dir)
	if err != nil || len(again.Generated) != 6 {
		t.Fatalf("after removing the CA: %v, generated %v", err, again.Generated)
	}

	// A CA that does not load is not silently replaced.
	if err := os.WriteFile(f.CAKey, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir); err == nil || !strings.Contains(err.Error(), "remove") {
		t.Errorf("broken CA: %v", err)
	}
}
