package nginx

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/proc"
)

// The article's set-up runs as the bench builds it: a licensed account
// pulls, and every request costs one licence API call; no credential, a
// wrong API token, an unlicensed channel and a write are refused; blobs are
// redirected to S3 as the upstream answers.
func TestLuaArticleSetUp(t *testing.T) {
	if !HasLua() {
		t.Skipf("nginx with its Lua module not installed (apt-get install nginx libnginx-mod-http-lua); %s", LuaModule)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := fixtures.Start(ctx, t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := StartLua(dir, addr, f.Addrs.Registry, f.Addrs.License, fixtures.UpstreamBasic(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if err := proc.WaitReady(ctx, p, "http://"+addr+"/health", 20*time.Second, 200); err != nil {
		t.Fatal(err)
	}
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, authz string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
		req.Header.Set("User-Agent", "docker/27.0.0 go/go1.22")
		req.Header.Set("Accept", f.Addrs.Pull.IndexType)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	user := "lua@bench.example"
	good := basic(user, fixtures.APIToken(user))
	im := f.Addrs.Pull
	before := f.LicenceStats().Total
	resp, body := do(http.MethodGet, "/v2/"+im.Repo+"/manifests/"+im.Tag, good)
	if resp.StatusCode != 200 || int64(len(body)) != im.IndexSize || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
		t.Errorf("licensed pull of the index: %d, %d bytes, %q", resp.StatusCode, len(body), body)
	}
	resp, _ = do(http.MethodGet, "/v2/"+im.Repo+"/blobs/"+im.Layers[0].Digest, good)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, "http://"+f.Addrs.S3+"/") {
		t.Errorf("layer: %d to %q", resp.StatusCode, loc)
	}
	if n := f.LicenceStats().Total - before; n != 2 {
		t.Errorf("%d licence API calls for 2 requests; the article checks every request", n)
	}
	if resp, _ = do(http.MethodGet, "/v2/"+im.Repo+"/manifests/"+im.Tag, ""); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("no credential: %d, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ = do(http.MethodGet, "/v2/"+im.Repo+"/manifests/"+im.Tag, basic(user, "wrong")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong API token: %d", resp.StatusCode)
	}
	if resp, _ = do(http.MethodGet, "/v2/internal/app/manifests/latest", good); resp.StatusCode != http.StatusForbidden {
		t.Errorf("unlicensed channel: %d", resp.StatusCode)
	}
	if resp, _ = do(http.MethodDelete, "/v2/"+im.Repo+"/manifests/"+im.ManifestDigest, good); resp.StatusCode != http.StatusForbidden {
		t.Errorf("DELETE: %d", resp.StatusCode)
	}
	if conf := string(LuaConfig(dir, addr, "u:1", "l:2", 1)); strings.Contains(conf, "%!") || !strings.Contains(conf, "load_module "+LuaModule) {
		t.Errorf("configuration:\n%s", conf)
	}
	if t.Failed() {
		t.Logf("nginx log: %s", p.LogTail())
		if data, err := readFile(filepath.Join(dir, "error.log")); err == nil {
			t.Logf("error.log: %s", data)
		}
	}
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
