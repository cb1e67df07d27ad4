package devstack

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/crypto/bcrypt"

	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
	"github.com/acme/registry-gateway/pkg/auth"
)

// TestGoContainerRegistry drives the stack with the go-containerregistry
// client library, which is what crane is made of.
func TestGoContainerRegistry(t *testing.T) {
	st, dir := startStack(t)
	demo := crane.WithAuth(&authn.Basic{Username: DemoUser, Password: DemoToken})
	opts := []crane.Option{demo, crane.Insecure, crane.WithContext(t.Context())}
	ok := st.GatewayHost + "/" + LicensedRepo

	t.Run("list tags", func(t *testing.T) {
		tags, err := crane.ListTags(ok, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tags, DemoTags) {
			t.Errorf("tags %v", tags)
		}
	})

	t.Run("index digest is the pushed one", func(t *testing.T) {
		d, err := crane.Digest(ok+":1.0", opts...)
		if err != nil {
			t.Fatal(err)
		}
		if want := st.Images[ok+":1.0"]; d != want {
			t.Errorf("digest %s, pushed %s", d, want)
		}
	})

	t.Run("pull and read the file", func(t *testing.T) {
		img, err := crane.Pull(ok+":1.0", append(opts, crane.WithPlatform(&v1.Platform{OS: "linux", Architecture: "arm64"}))...)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil || cf.Architecture != "arm64" {
			t.Fatalf("config %+v, %v", cf, err)
		}
		var buf bytes.Buffer
		if err := crane.Export(img, &buf); err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(&buf)
		h, err := tr.Next()
		if err != nil || h.Name != DemoFile {
			t.Fatalf("first entry %v, %v", h, err)
		}
		body, _ := io.ReadAll(tr)
		if !strings.Contains(string(body), "stable channel") {
			t.Errorf("file says %q", body)
		}
	})

	t.Run("copy to a directory like skopeo copy", func(t *testing.T) {
		path := filepath.Join(dir, "pulled.tar")
		img, err := crane.Pull(ok+":latest", opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := crane.Save(img, ok+":latest", path); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Fatalf("saved %v, %v", fi, err)
		}
	})

	t.Run("catalog shows the licensed channel only", func(t *testing.T) {
		repos, err := crane.Catalog(st.GatewayHost, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(repos, []string{LicensedRepo}) {
			t.Errorf("catalog %v", repos)
		}
	})

	for _, tc := range []struct {
		name string
		ref  string
		opt  crane.Option
		want string // what crane prints
	}{
		{"unlicensed channel", st.GatewayHost + "/" + UnlicensedRepo, demo, unlicensedMessage},
		{"wrong API token", ok, crane.WithAuth(&authn.Basic{Username: DemoUser, Password: "wrong"}), "invalid username or API token"},
		{"lapsed licence", ok, crane.WithAuth(&authn.Basic{Username: "lapsed@example.com", Password: "expired-api-token"}), "invalid username or API token"},
		{"anonymous", ok, crane.WithAuth(authn.Anonymous), "authentication required"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := crane.ListTags(tc.ref, tc.opt, crane.Insecure)
			var te *transport.Error
			if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
				t.Fatalf("err %v, want a 401", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("crane says %q, want it to say %q", err, tc.want)
			}
		})
	}

	t.Run("read-only", func(t *testing.T) {
		ref, _ := name.ParseReference(ok+":pushed", name.Insecure)
		img, _ := crane.Pull(ok+":1.0", opts...)
		err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: DemoUser, Password: DemoToken}))
		if err == nil {
			t.Fatal("a push through the gateway succeeded")
		}
	})
}

// TestDockerLoginFlow is what `docker login` and `docker pull` do, by hand:
// no Docker engine runs here.
func TestDockerLoginFlow(t *testing.T) {
	st, _ := startStack(t)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(u, bearer string, basic bool) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if basic {
			req.SetBasicAuth(DemoUser, DemoToken)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	resp, _ := get(st.GatewayURL+"/v2/", "", false)
	ch, err := auth.ParseChallenge(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || err != nil || ch.Realm != st.Realm || ch.Service != st.Service {
		t.Fatalf("challenge %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	q := url.Values{"account": {DemoUser}, "client_id": {"docker"}, "offline_token": {"true"}, "service": {st.Service}}
	resp, body := get(st.Realm+"?"+q.Encode(), "", true)
	var answer struct {
		Token        string `json:"token"`
		AccessToken  string `json:"access_token"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &answer); resp.StatusCode != 200 || err != nil || answer.Token == "" || answer.Token != answer.AccessToken || answer.ExpiresIn < 60 {
		t.Fatalf("login token: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(st.GatewayURL+"/v2/", answer.Token, false); resp.StatusCode != 200 {
		t.Fatalf("/v2/ with the login token: %d %s", resp.StatusCode, body)
	}

	// The pull, with a refresh token as docker uses once logged in
	// (containerd's POST form), through the gateway's /token.
	if answer.RefreshToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {answer.RefreshToken}, "client_id": {"containerd-client"},
			"service": {st.Service}, "scope": {"repository:" + LicensedRepo + ":pull"}}
		resp, err := client.PostForm(st.Realm, form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &answer); resp.StatusCode != 200 || err != nil {
			t.Fatalf("refresh: %d %s", resp.StatusCode, body)
		}
	} else {
		q.Set("scope", "repository:"+LicensedRepo+":pull")
		_, body := get(st.Realm+"?"+q.Encode(), "", true)
		_ = json.Unmarshal(body, &answer)
	}
	if resp, body := get(st.GatewayURL+"/v2/"+LicensedRepo+"/manifests/1.0", answer.AccessToken, false); resp.StatusCode != 200 {
		t.Fatalf("manifest: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(st.GatewayURL+"/v2/"+UnlicensedRepo+"/manifests/1.0", answer.AccessToken, false); resp.StatusCode != 401 {
		t.Fatalf("beta manifest with a stable token: %d", resp.StatusCode)
	}
}

// TestPrintedOperatorCommands runs the printed `tokenserver token|inspect`
// lines as printed (through tokencli, which bin/tokenserver dispatches to).
func TestPrintedOperatorCommands(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testOperatorCommands(t, m.mod) })
	}
}

func testOperatorCommands(t *testing.T, mod func(*Options)) {
	st, _ := startStack(t, mod)
	var n int
	for _, c := range st.Commands() {
		if c.Tool != "tokenserver" {
			continue
		}
		n++
		t.Run(c.Line, func(t *testing.T) {
			var stdin io.Reader = strings.NewReader("")
			var out bytes.Buffer
			code := 0
			for i, stage := range strings.Split(c.Line, " | ") {
				words := strings.Fields(stage)
				for len(words) > 0 && strings.Contains(words[0], "=") {
					k, v, _ := strings.Cut(words[0], "=")
					t.Setenv(k, v)
					words = words[1:]
				}
				if want := filepath.Join(st.BinDir, "tokenserver"); words[0] != want || !filepath.IsAbs(want) {
					t.Fatalf("stage %d runs %s, want %s (absolute)", i, words[0], want)
				}
				out.Reset()
				var errb bytes.Buffer
				code = tokencli.Run(t.Context(), words[1:], stdin, &out, &errb, tokenserver.AccountsConfig)
				stdin = bytes.NewReader(out.Bytes())
				if code != 0 && !c.Refused {
					t.Fatalf("stage %d exit %d\n%s%s", i, code, out.String(), errb.String())
				}
			}
			if c.Refused {
				if code == 0 || !strings.Contains(out.String(), "NOT GRANTED") {
					t.Errorf("refused command: exit %d\n%s", code, out.String())
				}
				return
			}
			if !strings.Contains(out.String(), "OK signature verified") || !strings.Contains(out.String(), LicensedRepo) {
				t.Errorf("output:\n%s", out.String())
			}
		})
	}
	if n != 3 {
		t.Errorf("%d tokenserver commands printed", n)
	}
}

// TestPrintedCurl runs the printed curl command, when curl is installed.
func TestPrintedCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			st, _ := startStack(t, m.mod)
			for _, c := range st.Commands() {
				if c.Tool != "curl" {
					continue
				}
				out, err := exec.CommandContext(t.Context(), curl, strings.Fields(c.Line)[1:]...).CombinedOutput()
				var answer struct{ Token string }
				if err != nil || json.Unmarshal(out, &answer) != nil || answer.Token == "" {
					t.Errorf("%s: %v\n%s", c.Line, err, out)
				}
			}
		})
	}
}

func TestBannerTLS(t *testing.T) {
	st, dir := startStack(t, withTLS)
	if st.TLS == nil || len(st.TLS.Generated) != 6 || !strings.HasPrefix(st.GatewayURL, "https://") || !strings.HasPrefix(st.JWKSURL, "https://") {
		t.Fatalf("stack %+v", st)
	}
	ca := filepath.Join(dir, "certs", "dev-ca", "ca.crt")
	var b bytes.Buffer
	st.WriteBanner(&b)
	out := b.String()
	for _, want := range []string{
		"development CA " + ca,
		"mkdir -p /etc/docker/certs.d/" + st.GatewayHost + "\n",
		"cp " + ca + " /etc/docker/certs.d/" + st.GatewayHost + "/ca.crt\n",
		"docker login " + st.GatewayHost + " -u " + DemoUser + " --password-stdin",
		"skopeo inspect --cert-dir " + filepath.Dir(ca) + " --creds",
		"SSL_CERT_FILE=" + ca + " crane ls " + st.GatewayHost,
		"curl -fsS --cacert " + ca + " -u " + DemoUser,
		"--cacert " + ca,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "insecure") || strings.Contains(out, "tls-verify=false") || strings.Contains(out, "http://localhost") {
		t.Errorf("the HTTPS banner still turns verification off or names plain HTTP:\n%s", out)
	}

	// A second start keeps the certificates.
	opts := testOptions(dir)
	opts.TLS, opts.NoSeed = true, true
	again, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Wait() }) // t.Context ends first
	if len(again.TLS.Generated) != 0 {
		t.Errorf("second start regenerated %v", again.TLS.Generated)
	}
}

func TestBanner(t *testing.T) {
	st, _ := startStack(t)
	var b bytes.Buffer
	st.WriteBanner(&b)
	out := b.String()
	for _, want := range []string{
		st.GatewayURL, st.TokenServerURL, st.UpstreamURL, st.JWKSURL,
		st.GatewayMetricsURL + "/metrics", st.TokenServerMetricsURL + "/metrics",
		"docker login " + st.GatewayHost + " -u " + DemoUser + " --password-stdin",
		"docker pull " + st.GatewayHost + "/stable/hello:1.0",
		"# refused: no licence for the beta channel\n  docker pull " + st.GatewayHost + "/beta/hello:1.0",
		"alias crane='go run " + CraneModule + "'",
		"keys     generated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	// Every refused command is announced, every tool has one.
	refused := map[string]bool{}
	for _, c := range st.Commands() {
		if c.Refused {
			refused[c.Tool] = true
		}
	}
	if len(refused) != 4 {
		t.Errorf("refused commands for %v", refused)
	}
}

// TestMetricsListeners: each service serves its metrics on a free
// loopback port of its own, printed in the banner; the clients' ports
// answer /metrics with 404.
func TestMetricsListeners(t *testing.T) {
	st, _ := startStack(t)
	for _, c := range []struct {
		url, want string
		status    int
	}{
		{st.GatewayMetricsURL + "/metrics", `gateway_connections_refused_total{limit="max_connections"} 0`, 200},
		{st.TokenServerMetricsURL + "/metrics", `tokenserver_connections_refused_total{limit="max_connections"} 0`, 200},
		{st.GatewayURL + "/metrics", "", 404},
		{st.TokenServerURL + "/metrics", "", 404},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %.200s", c.url, resp.StatusCode, body)
		}
	}
	for _, u := range []string{st.GatewayMetricsURL, st.TokenServerMetricsURL} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") || strings.HasSuffix(u, ":9090") || strings.HasSuffix(u, ":9091") {
			t.Errorf("metrics at %s: want a free loopback port", u)
		}
	}
}

func TestRestartKeepsKeysAndData(t *testing.T) {
	dir := copyDeploy(t)
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := Start(ctx, testOptions(dir))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if (st.Keys != nil) != (i == 0) {
			t.Errorf("start %d: keys generated = %v", i, st.Keys != nil)
		}
		cancel()
		if err := st.Wait(); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		// The ports are free again once Wait returns.
		for _, u := range []string{st.GatewayURL, st.TokenServerURL, st.UpstreamURL} {
			host := strings.TrimPrefix(u, "http://")
			host = strings.Replace(host, "localhost", "127.0.0.1", 1)
			ln, err := net.Listen("tcp", host)
			if err != nil {
				t.Errorf("after stop: %v", err)
				continue
			}
			ln.Close()
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "certs", tokencli.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "registry", "docker")); err != nil {
		t.Errorf("registry data: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string, o *Options)
		want  string
	}{
		{"port in use", func(t *testing.T, dir string, o *Options) { o.GatewayAddr = busy.Addr().String() },
			"address already in use (is another stack running?"},
		{"missing configuration", func(t *testing.T, dir string, o *Options) { o.GatewayConfig = "deploy/nope.yaml" },
			"nope.yaml"},
		{"invalid configuration", func(t *testing.T, dir string, o *Options) {
			write(t, filepath.Join(dir, "deploy/gateway.yaml"), "listen: [\n")
		}, "gateway.yaml"},
		{"service mismatch", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "deploy/gateway.yaml"), "service: registry-gateway-demo", "service: other")
		}, `service/issuer "other"/"demo-token-service" differ`},
		{"ECR upstream", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "deploy/gateway.yaml"), "  static:\n    username: upstream\n    password_file: deploy/upstream.password",
				"  ecr: {region: eu-west-1}")
		}, "must use upstream.static"},
		{"certificate missing", func(t *testing.T, dir string, o *Options) {
			if _, err := tokencli.Keygen(tokencli.KeygenOptions{Dir: filepath.Join(dir, "certs")}); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, "certs", tokencli.CertFile))
		}, "its certificate is not"},
		{"wrong upstream password", func(t *testing.T, dir string, o *Options) {
			write(t, filepath.Join(dir, "deploy/upstream.password"), "wrong\n")
		}, "pushing the demo images"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDeploy(t)
			o := testOptions(dir)
			tc.setup(t, dir, &o)
			st, err := Start(t.Context(), o)
			if err == nil {
				t.Fatalf("started: %+v", st)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s lacks %q", path, old)
	}
	write(t, path, strings.Replace(string(data), old, new, 1))
}

// TestCommittedUpstreamCredential: the password the gateway sends is the one
// the committed htpasswd (used by devstack and by compose's registry:3)
// accepts.
func TestCommittedUpstreamCredential(t *testing.T) {
	pass, err := readPassword(filepath.Join(repoRoot, "deploy/upstream.password"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy/upstream.htpasswd"))
	if err != nil {
		t.Fatal(err)
	}
	var entries int
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		entries++
		user, hash, _ := strings.Cut(line, ":")
		if user != "upstream" || bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) != nil {
			t.Errorf("htpasswd user %q does not accept the committed password", user)
		}
	}
	if entries != 1 {
		t.Errorf("%d htpasswd entries", entries)
	}
}

func TestDemoImageIsReproducible(t *testing.T) {
	a, _ := DemoImage("stable")
	b, _ := DemoImage("stable")
	c, _ := DemoImage("beta")
	da, _ := a.Digest()
	db, _ := b.Digest()
	dc, _ := c.Digest()
	if da != db || da == dc {
		t.Errorf("digests %s %s %s", da, db, dc)
	}
	m, err := a.IndexManifest()
	if err != nil || len(m.Manifests) != 2 {
		t.Fatalf("index %+v, %v", m, err)
	}
}
