package gateway

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

const (
	dgst    = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dgst512 = "sha512:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseRoute(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 250) + "/" + strings.Repeat("b", 10) // 261 characters
	tests := []struct {
		path   string
		want   Route
		code   string // error code when not ""
		status int
	}{
		{path: "/v2/", want: Route{Kind: RouteBase}},
		{path: "/v2", want: Route{Kind: RouteBase}},
		{path: "/v2/_catalog", want: Route{Kind: RouteCatalog}},
		{path: "/v2/stable/app/manifests/latest", want: Route{Kind: RouteManifest, Name: "stable/app", Reference: "latest", Suffix: "/manifests/latest"}},
		{path: "/v2/app/manifests/V1.2_rc-3", want: Route{Kind: RouteManifest, Name: "app", Reference: "V1.2_rc-3", Suffix: "/manifests/V1.2_rc-3"}},
		{path: "/v2/stable/app/manifests/" + dgst, want: Route{Kind: RouteManifest, Name: "stable/app", Reference: dgst, Suffix: "/manifests/" + dgst}},
		{path: "/v2/stable/app/blobs/" + dgst512, want: Route{Kind: RouteBlob, Name: "stable/app", Reference: dgst512, Suffix: "/blobs/" + dgst512}},
		{path: "/v2/stable/app/tags/list", want: Route{Kind: RouteTags, Name: "stable/app", Suffix: "/tags/list"}},
		{path: "/v2/stable/app/referrers/" + dgst, want: Route{Kind: RouteReferrers, Name: "stable/app", Reference: dgst, Suffix: "/referrers/" + dgst}},
		// Names may hold the words of the grammar.
		{path: "/v2/a/manifests/b/manifests/c", want: Route{Kind: RouteManifest, Name: "a/manifests/b", Reference: "c", Suffix: "/manifests/c"}},
		{path: "/v2/tags/list/tags/list", want: Route{Kind: RouteTags, Name: "tags/list", Suffix: "/tags/list"}},
		{path: "/v2/a__b/c-d/e.f/manifests/x", want: Route{Kind: RouteManifest, Name: "a__b/c-d/e.f", Reference: "x", Suffix: "/manifests/x"}},

		// Not a route.
		{path: "/", code: httpx.CodeUnsupported, status: 404},
		{path: "/v2x", code: httpx.CodeUnsupported, status: 404},
		{path: "/v1/_ping", code: httpx.CodeUnsupported, status: 404},
		{path: "/v2/app", code: httpx.CodeUnsupported, status: 404},
		{path: "/v2/app/manifests", code: httpx.CodeUnsupported, status: 404},
		{path: "/v2/app/tags/other", code: httpx.CodeUnsupported, status: 404},
		{path: "/v2/app/blobs/uploads", code: httpx.CodeDigestInvalid, status: 400},
		{path: "/v2/app/uploads/x", code: httpx.CodeUnsupported, status: 404},
		{path: "/v2/_catalog/x", code: httpx.CodeUnsupported, status: 404},
		{path: "/v2/manifests/latest", code: httpx.CodeUnsupported, status: 404},

		// Not canonical.
		{path: "/v2/stable%2Fapp/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable%2fapp/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable/%2e%2e/app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable/app/manifests/%6catest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/%5fcatalog", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable/../app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable/./app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable//app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2//stable/app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable/app/manifests/latest/", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable/app/tags/list/", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/Stable/app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/stable/APP/tags/list", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/localhost:5000/app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/-app/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/app./manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/a___b/manifests/latest", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/" + long + "/tags/list", code: httpx.CodeNameInvalid, status: 400},
		{path: "/v2/" + strings.Repeat("a/", 300) + "tags/list", code: httpx.CodeNameInvalid, status: 400},

		// References.
		{path: "/v2/app/manifests/-latest", code: httpx.CodeManifestUnknown, status: 404},
		{path: "/v2/app/manifests/.latest", code: httpx.CodeManifestUnknown, status: 404},
		{path: "/v2/app/manifests/" + strings.Repeat("t", 129), code: httpx.CodeManifestUnknown, status: 404},
		{path: "/v2/app/manifests/sha256:abc", code: httpx.CodeDigestInvalid, status: 400},
		{path: "/v2/app/manifests/" + strings.ToUpper(dgst), code: httpx.CodeDigestInvalid, status: 400},
		{path: "/v2/app/manifests/md5:0123456789abcdef0123456789abcdef", code: httpx.CodeDigestInvalid, status: 400},
		{path: "/v2/app/blobs/latest", code: httpx.CodeDigestInvalid, status: 400},
		{path: "/v2/app/referrers/latest", code: httpx.CodeDigestInvalid, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.path[:min(len(tt.path), 60)], func(t *testing.T) {
			got, err := ParseRoute(tt.path)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("ParseRoute(%q): %v", tt.path, err)
				}
				if got != tt.want {
					t.Fatalf("ParseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
				}
				return
			}
			var e *httpx.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseRoute(%q) = %+v, %v; want error %s", tt.path, got, err, tt.code)
			}
			if e.Code != tt.code || e.Status != tt.status {
				t.Fatalf("ParseRoute(%q): %d %s, want %d %s", tt.path, e.Status, e.Code, tt.status, tt.code)
			}
		})
	}
}

func TestRouteUpstreamPathAndScope(t *testing.T) {
	t.Parallel()
	r, err := ParseRoute("/v2/stable/app/blobs/" + dgst)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.UpstreamPath("acme/"); got != "/v2/acme/stable/app/blobs/"+dgst {
		t.Errorf("UpstreamPath = %q", got)
	}
	if got := r.Scope(); got != "repository:stable/app:pull" {
		t.Errorf("Scope = %q", got)
	}
	if got := (Route{Kind: RouteCatalog}).Scope(); got != "registry:catalog:*" {
		t.Errorf("catalog Scope = %q", got)
	}
	if got := (Route{Kind: RouteBase}).Scope(); got != "" {
		t.Errorf("base Scope = %q", got)
	}
}

// TestRouteForUpstream: the upstream name is the prefix and the client's
// name, and a name that only the prefix makes too long is refused with
// NAME_INVALID, the route kept for the log.
func TestRouteForUpstream(t *testing.T) {
	t.Parallel()
	r, err := ParseRoute("/v2/stable/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	if up, err := r.ForUpstream("acme/"); err != nil || up.Upstream != "acme/stable/app" || up.Name != "stable/app" {
		t.Errorf("ForUpstream = %+v, %v", up, err)
	}
	if up, err := r.ForUpstream(""); err != nil || up.Upstream != "stable/app" {
		t.Errorf("no prefix: %+v, %v", up, err)
	}
	// The path is built with the name, for the prefix it was built for.
	up, _ := r.ForUpstream("acme/")
	for _, tt := range []struct{ prefix, want string }{
		{"acme/", "/v2/acme/stable/app/manifests/v1"},
		{"", "/v2/stable/app/manifests/v1"},
		{"xyz/", "/v2/xyz/stable/app/manifests/v1"},
		{"acme/x/", "/v2/acme/x/stable/app/manifests/v1"},
	} {
		if got := up.UpstreamPath(tt.prefix); got != tt.want {
			t.Errorf("UpstreamPath(%q) after ForUpstream(acme/) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
	long, err := ParseRoute("/v2/" + strings.Repeat("a", 251) + "/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	up, err = long.ForUpstream("acme/")
	var e *httpx.Error
	if !errors.As(err, &e) || e.Code != httpx.CodeNameInvalid || up.Kind != RouteManifest {
		t.Errorf("too long with the prefix: %+v, %v", up, err)
	}
	if base, err := (Route{Kind: RouteBase}).ForUpstream("acme/"); err != nil || base.Upstream != "" {
		t.Errorf("base: %+v, %v", base, err)
	}
}

var anchoredNameRe = regexp.MustCompile(`^` + reference.NameRegexp.String() + `$`)

// FuzzParseRoute checks that whatever ParseRoute accepts is canonical: it
// rebuilds to the same path, its name passes distribution's own grammar,
// and nothing escaped, empty or dotted got through.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/_catalog", "/v2/stable/app/manifests/latest", "/v2/a/blobs/" + dgst,
		"/v2/a/tags/list", "/v2/a/referrers/" + dgst, "/v2/a%2Fb/manifests/x", "/v2/a/../b/tags/list",
		"/v2//a/tags/list", "/v2/A/tags/list", "/v2/a/manifests/" + dgst512,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, err := ParseRoute(path)
		if err != nil {
			var e *httpx.Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status >= 500 {
				t.Fatalf("ParseRoute(%q): error %v is not a 4xx *httpx.Error", path, err)
			}
			if e.Status == http.StatusNotFound && e.Code != httpx.CodeUnsupported {
				t.Fatalf("unexpected 404 code %s", e.Code)
			}
			return
		}
		if strings.Contains(path, "%") || strings.Contains(path, "//") || strings.Contains(path, "/./") || strings.Contains(path, "/../") {
			t.Fatalf("ParseRoute accepted non-canonical %q", path)
		}
		switch r.Kind {
		case RouteBase, RouteCatalog:
			return
		}
		if len(r.Name) > reference.RepositoryNameTotalLengthMax || !anchoredNameRe.MatchString(r.Name) || strings.ToLower(r.Name) != r.Name {
			t.Fatalf("ParseRoute(%q) accepted name %q", path, r.Name)
		}
		if _, err := reference.ParseNormalizedNamed(r.Name); err != nil {
			t.Fatalf("ParseRoute(%q) accepted name %q that reference refuses: %v", path, r.Name, err)
		}
		if got := r.UpstreamPath(""); got != path {
			t.Fatalf("ParseRoute(%q) rebuilds as %q", path, got)
		}
		if r.Kind == RouteManifest || r.Kind == RouteBlob || r.Kind == RouteReferrers {
			if !strings.HasSuffix(path, "/"+r.Reference) || r.Reference == "" {
				t.Fatalf("ParseRoute(%q): reference %q", path, r.Reference)
			}
		}
	})
}

// The hand-written matchers against the grammars they replace: the
// regular expressions of distribution/reference and go-digest's Validate.
var (
	oraclePathNameRe = regexp.MustCompile(`^` + pathComponent + `(?:/` + pathComponent + `)*$`)
	oracleTagRe      = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
)

func checkMatchersAgree(t *testing.T, s string) {
	t.Helper()
	if got, want := auth.IsRepositoryPath(s), oraclePathNameRe.MatchString(s); got != want {
		t.Errorf("auth.IsRepositoryPath(%q) = %v, the grammar says %v", s, got, want)
	}
	if got, want := validTag(s), oracleTagRe.MatchString(s); got != want {
		t.Errorf("validTag(%q) = %v, the grammar says %v", s, got, want)
	}
	if got, want := validDigest(s), digest.Digest(s).Validate() == nil; got != want {
		t.Errorf("validDigest(%q) = %v, go-digest says %v", s, got, want)
	}
}

var matcherSeeds = []string{
	"", "a", "A", "_", "-", ".", "a/b", "a//b", "/a", "a/", "a.b", "a..b", "a_b", "a__b", "a___b",
	"a-b", "a--b", "a-", "-a", "a._b", "a_.b", "a-.b", "ab/c-d/e__f.g", "a.b/c", "stable/app",
	"Latest", "1.4", "v1.0-rc.1", "_tag", ".tag", "-tag", "tag+x", "a b", "é", strings.Repeat("t", 128),
	strings.Repeat("t", 129), dgst, dgst512, "sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("a", 63),
	"sha384:" + strings.Repeat("0", 96), "sha512:" + strings.Repeat("f", 128), "md5:" + strings.Repeat("0", 32),
	"sha256:", ":" + strings.Repeat("0", 64), "sha256:" + strings.Repeat("0", 64) + "\n",
	"sha256:" + strings.Repeat("0", 64) + ":", "a\n", "a/b\n",
}

func TestMatchersAgreeWithGrammar(t *testing.T) {
	t.Parallel()
	for _, s := range matcherSeeds {
		checkMatchersAgree(t, s)
	}
}

func FuzzMatchers(f *testing.F) {
	for _, s := range matcherSeeds {
		f.Add(s)
	}
	f.Fuzz(checkMatchersAgree)
}
