package e2e

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
)

// TestDockerOverHTTPS drives the real docker engine against the gateway
// serving HTTPS only, with the development CA installed for its host:port
// the way a customer trusts a private CA (/etc/docker/certs.d/<host:port>/
// ca.crt). dockerd treats loopback registries as insecure: it would skip
// verification and fall back to plain HTTP, but the gateway speaks no plain
// HTTP, so every pull that succeeds here went over TLS. The refusal of a
// verifying client without the CA is TestHTTPSRefusals.
//
// The certificate files are renewed between pulls (and a pull runs while
// the reloader sees the new pair): no pull fails, and new connections get
// the new certificate.
func TestDockerOverHTTPS(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	s := newTLSStack(t)
	caPEM, err := os.ReadFile(s.certs.CACert)
	if err != nil {
		t.Fatal(err)
	}
	dockertest.TrustRegistryCA(t, s.gwHost, caPEM)
	ctx := t.Context()

	out, err := d.Docker(ctx, aliceToken, "login", s.gwHost, "-u", aliceUser, "--password-stdin")
	if err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %v\n%s", err, out)
	}

	image := s.gwHost + "/stable/app:v1"
	pull := func(i int) {
		t.Helper()
		out, err := d.Docker(ctx, "", "pull", image)
		if err != nil || !strings.Contains(out, s.image.String()) {
			t.Fatalf("docker pull %d: %v\n%s\ndockerd log:\n%s", i, err, out, d.Log())
		}
		// Removed again, so that the next pull fetches every layer.
		if out, err := d.Docker(ctx, "", "rmi", image); err != nil {
			t.Fatalf("docker rmi: %v\n%s", err, out)
		}
	}
	pull(0)

	serial := func() string {
		c, err := tls.Dial("tcp", s.gwHost, &tls.Config{RootCAs: s.certs.CA.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	for i := 1; i <= 3; i++ {
		renewed := s.renewGatewayCert(t)
		pull(i) // the reloader takes the new pair while docker pulls
		waitUntil(t, "the renewed certificate", func() bool { return serial() == renewed.SerialNumber.String() })
	}

	// The beta channel is not in alice's licence: docker's own refusal.
	out, err = d.Docker(ctx, "", "pull", s.gwHost+"/beta/app:v1")
	if err == nil || !strings.Contains(out, "denied") {
		t.Errorf("unlicensed pull: %v\n%s", err, out)
	}
	// An access line is written just after its answer.
	waitUntil(t, "4 manifest requests logged for 4 pulls", func() bool {
		return strings.Count(s.logs.String(), `"path":"/v2/stable/app/manifests/v1"`) >= 4
	})
}
