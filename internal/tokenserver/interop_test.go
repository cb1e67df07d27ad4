package tokenserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/license/backends"
)

// A stock distribution registry, configured with auth.token pointing at
// this service, accepts its tokens: a go-containerregistry client with the
// customer's e-mail and API token pulls from a licensed channel and is
// refused an unlicensed one. Three ways for the registry to trust the key:
// rootcertbundle with x5c in the token, rootcertbundle with the kid only
// (RSA: distribution derives the same thumbprint), and a JWKS file (no
// certificate: a registry with only a JWKS refuses tokens carrying x5c).
func TestInteropWithDistribution(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rsa   bool
		cert  bool // signing_cert configured: tokens carry x5c
		trust string
	}{
		{name: "rootcertbundle with x5c", cert: true, trust: "rootcertbundle"},
		{name: "rootcertbundle with kid", rsa: true, trust: "rootcertbundle"},
		{name: "jwks", trust: "jwks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			storage := filepath.Join(dir, "storage")

			// Push with an open registry on the same storage.
			open := startRegistry(t, embedreg.Options{RootDir: storage})
			stable := pushRandom(t, open, "stable/app:v1")
			pushRandom(t, open, "beta/app:v1")

			// The token service.
			keyPath, certPath := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.crt")
			if tc.rsa {
				k := writeRSAKey(t, keyPath)
				writeCert(t, certPath, k)
			} else {
				k := writeECKey(t, keyPath)
				writeCert(t, certPath, k)
			}
			licPath := filepath.Join(dir, "licenses.yaml")
			writeLicenses(t, licPath, defaultAccounts...)
			cfg := Config{Issuer: testIssuer, Service: testService, SigningKey: keyPath, Licenses: backends.Config{Backends: fileLicenses(licPath)}}
			if tc.cert {
				cfg.SigningCert = certPath
			}
			srv, err := New(t.Context(), &cfg, Options{Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			tokenURL := serve(t, srv) // http://localhost:PORT

			// The registry that checks tokens.
			ta := &embedreg.TokenAuth{Realm: tokenURL + "/token", Service: testService, Issuer: testIssuer}
			switch tc.trust {
			case "rootcertbundle":
				ta.RootCertBundle = certPath
			case "jwks":
				ta.JWKS = filepath.Join(dir, "jwks.json")
				resp := do(t, mustRequest(t, http.MethodGet, tokenURL+"/.well-known/jwks.json"))
				if err := os.WriteFile(ta.JWKS, bodyOf(resp), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			reg := startRegistry(t, embedreg.Options{RootDir: storage, Token: ta})

			alice := remote.WithAuth(&authn.Basic{Username: aliceUser, Password: aliceToken})

			// Licensed channel: pulled, every blob.
			img := pullImage(t, reg, "stable/app:v1", alice)
			if d, _ := img.Digest(); d != stable {
				t.Errorf("pulled %s, pushed %s", d, stable)
			}
			tags, err := remote.List(repo(t, reg, "stable/app"), alice)
			if err != nil || !slices.Equal(tags, []string{"v1"}) {
				t.Errorf("tags %v, %v", tags, err)
			}

			// Unlicensed channel: the token grants nothing there.
			_, err = remote.Image(ref(t, reg, "beta/app:v1"), alice)
			wantStatus(t, err, http.StatusUnauthorized, "unlicensed pull")

			// Push is never granted, even in a licensed channel.
			err = remote.Write(ref(t, reg, "stable/app:evil"), mustRandom(t), alice)
			wantStatus(t, err, http.StatusUnauthorized, "push")

			// Wrong API token: the token service refuses.
			_, err = remote.Image(ref(t, reg, "stable/app:v1"), remote.WithAuth(&authn.Basic{Username: aliceUser, Password: "wrong"}))
			wantStatus(t, err, http.StatusUnauthorized, "wrong API token")

			// Bob holds beta.
			pullImage(t, reg, "beta/app:v1", remote.WithAuth(&authn.Basic{Username: bobUser, Password: bobToken}))

			// docker login: a token without scope opens /v2/.
			login := mustToken(t, get(t, tokenURL, aliceUser, aliceToken, url.Values{
				"account": {aliceUser}, "client_id": {"docker"}, "offline_token": {"true"}, "service": {testService},
			}))
			if resp := bearer(t, reg+"/v2/", login.Token); resp.StatusCode != 200 {
				t.Errorf("/v2/ with the login token: %d %s", resp.StatusCode, bodyOf(resp))
			}

			// The refresh token docker keeps as identity token works for a
			// pull (go-containerregistry POSTs grant_type=refresh_token).
			pullImage(t, reg, "stable/app:v1", remote.WithAuth(authn.FromConfig(authn.AuthConfig{IdentityToken: login.RefreshToken})))

			// The catalog token is accepted; filtering is the gateway's job.
			cat := mustToken(t, get(t, tokenURL, aliceUser, aliceToken, scopes("registry:catalog:*")))
			resp := bearer(t, reg+"/v2/_catalog", cat.Token)
			var catalog struct{ Repositories []string }
			if err := json.Unmarshal(bodyOf(resp), &catalog); resp.StatusCode != 200 || err != nil || len(catalog.Repositories) != 2 {
				t.Errorf("catalog: %d %s", resp.StatusCode, bodyOf(resp))
			}
		})
	}
}

func startRegistry(t *testing.T, opts embedreg.Options) string {
	t.Helper()
	opts.LogLevel = "fatal" // 404s of the push probes are expected
	h, err := embedreg.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func ref(t *testing.T, host, r string) name.Reference {
	t.Helper()
	n, err := name.ParseReference(host+"/"+r, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func repo(t *testing.T, host, r string) name.Repository {
	t.Helper()
	n, err := name.NewRepository(host+"/"+r, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustRandom(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func pushRandom(t *testing.T, host, r string) v1.Hash {
	t.Helper()
	img := mustRandom(t)
	if err := remote.Write(ref(t, host, r), img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pullImage fetches the manifest and every layer.
func pullImage(t *testing.T, host, r string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := remote.Image(ref(t, host, r), append(opts, remote.WithContext(t.Context()))...)
	if err != nil {
		t.Fatalf("pull %s: %v", r, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("pull %s: layer: %v", r, err)
		}
	}
	return img
}

func wantStatus(t *testing.T, err error, status int, what string) {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != status {
		t.Errorf("%s: err = %v, want HTTP %d", what, err, status)
	}
}

func bearer(t *testing.T, u, token string) *http.Response {
	t.Helper()
	req := mustRequest(t, http.MethodGet, "http://"+u)
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}
