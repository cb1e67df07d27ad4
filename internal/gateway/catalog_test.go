package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
	"github.com/acme/registry-gateway/pkg/auth"
	"github.com/acme/registry-gateway/pkg/ecr"
)

type staticLister struct {
	names []string
	err   error
	calls atomic.Int32
}

func (l *staticLister) Repositories(context.Context) ([]string, error) {
	l.calls.Add(1)
	return l.names, l.err
}

var upstreamRepos = []string{
	"acme/stable/app", "acme/stable/db", "acme/beta/app", "acme/nightly/app", "acme/stable/web",
	"other/stable/app", "acme/Bad/name", "acme", "acme/stable/zz",
}

func catalogToken(e *env, channels ...string) http.Header {
	c := e.claims()
	c.Access = []auth.ResourceActions{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}
	c.Channels = channels
	return bearer(e.sign(c))
}

type catalogPage struct {
	Repositories []string `json:"repositories"`
}

func getCatalog(t *testing.T, e *env, query string, h http.Header) (catalogPage, *http.Response) {
	t.Helper()
	resp := e.do("GET", "/v2/_catalog"+query, h)
	body := readBody(t, resp)
	var p catalogPage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if p.Repositories == nil {
			t.Fatalf("repositories is null: %s", body)
		}
	}
	return p, resp
}

func TestCatalogFilteredAndPaginated(t *testing.T) {
	t.Parallel()
	lister := &staticLister{names: upstreamRepos}
	e := newEnv(t, newFakeRegistry(), func(_ *Config, o *Options) { o.Repositories = lister })
	h := catalogToken(e, "stable", "beta")

	p, resp := getCatalog(t, e, "", h)
	want := []string{"beta/app", "stable/app", "stable/db", "stable/web", "stable/zz"}
	if !slices.Equal(p.Repositories, want) || resp.Header.Get("Link") != "" {
		t.Fatalf("catalog %v (Link %q), want %v", p.Repositories, resp.Header.Get("Link"), want)
	}

	var all []string
	query := "?n=2"
	for range 10 {
		p, resp := getCatalog(t, e, query, h)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", query, resp.StatusCode)
		}
		all = append(all, p.Repositories...)
		link := resp.Header.Get("Link")
		if link == "" {
			break
		}
		if len(p.Repositories) != 2 {
			t.Errorf("page of %d with a Link", len(p.Repositories))
		}
		u := nextLink(mustParse(t, e.srv.URL+"/v2/_catalog"), link)
		if u == nil {
			t.Fatalf("bad Link %q", link)
		}
		query = "?" + u.RawQuery
	}
	if !slices.Equal(all, want) {
		t.Errorf("paged catalog %v, want %v", all, want)
	}

	if p, _ := getCatalog(t, e, "?last=stable/db", h); !slices.Equal(p.Repositories, []string{"stable/web", "stable/zz"}) {
		t.Errorf("last=stable/db: %v", p.Repositories)
	}
	if p, _ := getCatalog(t, e, "?n=0", h); len(p.Repositories) != 0 {
		t.Errorf("n=0: %v", p.Repositories)
	}
	for _, q := range []string{"?n=-1", "?n=x"} {
		_, resp := getCatalog(t, e, q, h)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", q, resp.StatusCode)
		}
	}
	if p, _ := getCatalog(t, e, "", catalogToken(e)); len(p.Repositories) != 0 {
		t.Errorf("no channels: %v", p.Repositories)
	}
	if n := lister.calls.Load(); n != 1 {
		t.Errorf("lister called %d times within the TTL", n)
	}
	if n := e.upstream.count(); n != 0 {
		t.Errorf("catalog went upstream %d times", n)
	}
}

func TestCatalogNeedsCatalogGrant(t *testing.T) {
	t.Parallel()
	lister := &staticLister{names: upstreamRepos}
	e := newEnv(t, newFakeRegistry(), func(_ *Config, o *Options) { o.Repositories = lister })
	c := e.claims() // pull on stable/app only
	c.Channels = []string{"stable"}
	resp := e.do("GET", "/v2/_catalog", bearer(e.sign(c)))
	body := readBody(t, resp)
	want := testChallenge + `,scope="registry:catalog:*",error="insufficient_scope",error_description="the token does not grant the catalog (registry:catalog:*)"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Www-Authenticate") != want {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Www-Authenticate"), body)
	}
	resp = e.do("GET", "/v2/_catalog", nil)
	if want := testChallenge + `,scope="registry:catalog:*"`; resp.Header.Get("Www-Authenticate") != want {
		t.Fatalf("anonymous: %q", resp.Header.Get("Www-Authenticate"))
	}
	if lister.calls.Load() != 0 {
		t.Error("listed without a grant")
	}
}

func TestCatalogUpstreamFailure(t *testing.T) {
	t.Parallel()
	lister := &staticLister{err: errors.New("AccessDenied")}
	e := newEnv(t, newFakeRegistry(), func(_ *Config, o *Options) { o.Repositories = lister })
	_, resp := getCatalog(t, e, "", catalogToken(e, "stable"))
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("%d", resp.StatusCode)
	}
}

func TestCatalogFromPlainRegistry(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry()
	reg.repos = []string{"acme/beta/app", "acme/stable/app", "acme/stable/db", "other/x"}
	e := newEnv(t, reg)
	p, resp := getCatalog(t, e, "", catalogToken(e, "stable"))
	if resp.StatusCode != http.StatusOK || !slices.Equal(p.Repositories, []string{"stable/app", "stable/db"}) {
		t.Fatalf("%d %v", resp.StatusCode, p.Repositories)
	}
	// Two pages upstream, both with the gateway's credential.
	if n := e.upstream.count(); n != 2 {
		t.Errorf("%d upstream catalog requests", n)
	}
	if up := e.upstream.last(); up.Path != "/v2/_catalog" || up.Header.Get("Authorization") != basic(testUser, testPassword) {
		t.Errorf("upstream saw %s with %q", up.Path, up.Header.Get("Authorization"))
	}
}

// TestCatalogFromECR: with the ecr source, the catalog lists the registry
// with DescribeRepositories through the SDK client pkg/ecr builds, tuned
// by ecr.Config.Client (the environment's endpoint is dead: the option is what
// reaches the fake).
func TestCatalogFromECR(t *testing.T) {
	fake := ecrfake.New(ecrfake.Options{RegistryID: "123456789012", Repositories: upstreamRepos})
	t.Cleanup(fake.Close)
	fake.SetEnv(t)
	t.Setenv("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:1")
	e := newEnv(t, newFakeRegistry(), func(c *Config, o *Options) {
		c.Upstream.Providers = ecrProvider(&ecr.Config{Region: "us-east-1", RegistryID: "123456789012",
			Client: ecr.ClientOptions{Endpoint: fake.URL(), MaxAttempts: 1}})
		o.Credentials = nil
	})
	p, resp := getCatalog(t, e, "", catalogToken(e, "stable"))
	if resp.StatusCode != http.StatusOK || !slices.Equal(p.Repositories, []string{"stable/app", "stable/db", "stable/web", "stable/zz"}) {
		t.Fatalf("%d %v", resp.StatusCode, p.Repositories)
	}
	if n := fake.Calls("DescribeRepositories"); n != 1 {
		t.Errorf("%d DescribeRepositories calls, want 1", n)
	}
}
