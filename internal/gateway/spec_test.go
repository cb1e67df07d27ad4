package gateway

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/httpx"
)

// TestCachedManifestKeepsValidators: a manifest answered from the cache has
// the upstream's Etag (distribution's, the real one) and Last-Modified, and
// an If-None-Match gets the answer the upstream gives it: 304 for the
// manifest's tag, 200 for another, from the cache without asking the
// upstream.
func TestCachedManifestKeepsValidators(t *testing.T) {
	t.Parallel()
	reg, err := embedreg.New(t.Context(), embedreg.Options{RootDir: t.TempDir(), LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	const lastModified = "Mon, 07 Dec 2026 10:00:00 GMT"
	// An upstream that also sends Last-Modified (ECR's S3-backed answers
	// may; distribution sends none).
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Last-Modified", lastModified)
		}
		reg.ServeHTTP(w, r)
	})
	e := newEnv(t, upstream)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(e.upSrv.URL, "http://")+"/acme/stable/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	path := "/v2/stable/app/manifests/" + d.String()

	direct := func(h http.Header) *http.Response {
		req, _ := http.NewRequest("GET", e.upSrv.URL+"/v2/acme/stable/app/manifests/"+d.String(), nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	up := direct(nil)
	etag := up.Header.Get("Etag")
	if etag == "" {
		t.Fatalf("the upstream sent no Etag: %v", up.Header)
	}

	first := e.do("GET", path, bearer(e.token()))
	readBody(t, first)
	before := e.upstream.count()
	cached := e.do("GET", path, bearer(e.token()))
	readBody(t, cached)
	if e.upstream.count() != before {
		t.Fatal("the second GET was not answered from the cache")
	}
	for _, resp := range []*http.Response{first, cached} {
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Etag") != etag || resp.Header.Get("Last-Modified") != lastModified {
			t.Errorf("%d, Etag %q, Last-Modified %q; want 200 and the upstream's %q, %q", resp.StatusCode,
				resp.Header.Get("Etag"), resp.Header.Get("Last-Modified"), etag, lastModified)
		}
	}
	head := e.do("HEAD", path, bearer(e.token()))
	if head.Header.Get("Etag") != etag {
		t.Errorf("HEAD from the cache: Etag %q, want %q", head.Header.Get("Etag"), etag)
	}

	for _, tc := range []struct {
		name, inm string
	}{
		{"its Etag", etag},
		{"its Etag, weak", "W/" + etag},
		{"its Etag in a list", `"other", ` + etag},
		{"its digest unquoted", d.String()},
		{"another", `"sha256:0000"`},
	} {
		h := bearer(e.token())
		h.Set("If-None-Match", tc.inm)
		before := e.upstream.count()
		resp := e.do("GET", path, h)
		body := readBody(t, resp)
		if e.upstream.count() != before {
			t.Errorf("%s: the upstream was asked", tc.name)
		}
		want := direct(http.Header{"If-None-Match": {tc.inm}})
		if tc.name == "its Etag, weak" || tc.name == "its Etag in a list" {
			// distribution compares the header whole; RFC 9110 and the
			// cache compare each entity tag weakly.
			want.StatusCode = http.StatusNotModified
		}
		if resp.StatusCode != want.StatusCode {
			t.Errorf("%s: %d from the cache, the upstream answers %d", tc.name, resp.StatusCode, want.StatusCode)
		}
		if resp.StatusCode == http.StatusNotModified && (body != "" || resp.Header.Get("Etag") != etag) {
			t.Errorf("%s: 304 with body %q, Etag %q", tc.name, body, resp.Header.Get("Etag"))
		}
	}
}

// TestConditionalManifestWithoutEtag: an entry stored without an Etag cannot
// answer an If-None-Match; the upstream does.
func TestConditionalManifestWithoutEtag(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	d := reg.put("", []byte(`{"schemaVersion":2}`))
	e := newEnv(t, reg)
	path := "/v2/stable/app/manifests/" + d
	readBody(t, e.do("GET", path, bearer(e.token())))
	before := e.upstream.count()
	h := bearer(e.token())
	h.Set("If-None-Match", `"`+d+`"`)
	resp := e.do("GET", path, h)
	readBody(t, resp)
	if e.upstream.count() != before+1 || resp.StatusCode != http.StatusOK {
		t.Errorf("%d, upstream asked %d times; want the upstream's 200", resp.StatusCode, e.upstream.count()-before)
	}
	// Nor does the conditional GET replace what is stored.
	before = e.upstream.count()
	readBody(t, e.do("GET", path, bearer(e.token())))
	if e.upstream.count() != before {
		t.Error("the entry is gone after a conditional GET")
	}
}

// referrersUpstream answers the referrers API as the OCI distribution spec
// describes it: an image index of the subject's referrers, filtered by
// artifactType when asked, which OCI-Filters-Applied then confirms.
func referrersUpstream(t *testing.T, seen *[]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*seen = append(*seen, r.URL.RequestURI())
		if r.URL.Path != "/v2/acme/stable/app/referrers/"+dgst {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		manifests := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + dgst512 +
			`","size":10,"artifactType":"application/vnd.example.sbom"}`
		if at := r.URL.Query().Get("artifactType"); at != "" {
			w.Header().Set("OCI-Filters-Applied", "artifactType")
			if at != "application/vnd.example.sbom" {
				manifests = ""
			}
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.Header().Set("X-Internal-Request-Id", "abc")
		_, _ = io.WriteString(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+manifests+`]}`)
	})
}

// TestReferrersPassThrough: with an upstream that has the referrers API,
// its 200 index reaches the client as it is, the artifactType query goes
// upstream and OCI-Filters-Applied comes back; the repository's grant
// covers its referrers and nothing else does.
func TestReferrersPassThrough(t *testing.T) {
	t.Parallel()
	var seen []string
	e := newEnv(t, referrersUpstream(t, &seen))
	resp := e.do("GET", "/v2/stable/app/referrers/"+dgst+"?artifactType=application%2Fvnd.example.sbom", bearer(e.token()))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"artifactType":"application/vnd.example.sbom"`) ||
		resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("%d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if got := resp.Header.Get("OCI-Filters-Applied"); got != "artifactType" {
		t.Errorf("OCI-Filters-Applied %q, want artifactType", got)
	}
	if resp.Header.Get("X-Internal-Request-Id") != "" {
		t.Error("a header off the allow-list passed")
	}
	if len(seen) != 1 || seen[0] != "/v2/acme/stable/app/referrers/"+dgst+"?artifactType=application%2Fvnd.example.sbom" {
		t.Errorf("upstream saw %q", seen)
	}

	plain := e.do("GET", "/v2/stable/app/referrers/"+dgst, bearer(e.token()))
	readBody(t, plain)
	if plain.StatusCode != http.StatusOK || plain.Header.Get("OCI-Filters-Applied") != "" {
		t.Errorf("unfiltered: %d, OCI-Filters-Applied %q", plain.StatusCode, plain.Header.Get("OCI-Filters-Applied"))
	}

	// A token for stable/app does not reach another repository's
	// referrers, which never go upstream.
	n := len(seen)
	other := e.do("GET", "/v2/beta/app/referrers/"+dgst, bearer(e.token()))
	readBody(t, other)
	if other.StatusCode != http.StatusUnauthorized || len(seen) != n {
		t.Errorf("beta/app referrers with a stable/app token: %d, upstream asked %d times", other.StatusCode, len(seen)-n)
	}
}

// TestDefaultErrorCodesAreSpecCodes walks every 4xx status and route the
// upstream can answer with: the code the client gets is one of the spec's,
// or none (a plain answer).
func TestDefaultErrorCodesAreSpecCodes(t *testing.T) {
	t.Parallel()
	for status := 400; status < 500; status++ {
		for kind := RouteUnknown; kind <= RouteReferrers; kind++ {
			code := defaultErrorCode(status, kind)
			if _, ok := httpx.SpecMessage(code); !ok && code != "" {
				t.Errorf("%d on %s: code %q is not the spec's", status, kind, code)
			}
		}
	}
}

// serverErrorCodes are the codes the gateway may write outside the spec's
// list: only with a 5xx (the spec's list binds 4XX answers), or with the
// 499 logged for a client that hung up, which no client sees.
var serverErrorCodes = map[string]bool{httpx.CodeUnavailable: true, httpx.CodeUnknown: true}

// TestEveryErrorCodeIsASpecCode scans the source of the gateway and of the
// plumbing it answers through (internal/httpx) for every error it can
// write, httpx.Errorf(status, code, …) and httpx.Error{Status, Code}, and
// checks the code: one of the spec's fourteen for a 4xx, or a server
// error's code with a 5xx (a constant, or upstreamStatus's, which the test
// checks is one). A new error with another code fails here.
func TestEveryErrorCodeIsASpecCode(t *testing.T) {
	t.Parallel()
	statuses := httpStatusConstants(t)
	codes := constants(t, "../httpx/errors.go")
	statuses["StatusClientClosedRequest"] = httpx.StatusClientClosedRequest
	found := 0
	for _, dir := range []string{".", "../httpx"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				var status, code ast.Expr
				switch n := n.(type) {
				case *ast.FuncDecl:
					// The constructor itself, whose code is its argument.
					return !(n.Recv == nil && n.Name.Name == "Errorf")
				case *ast.CallExpr:
					if isHTTPX(n.Fun, "Errorf") && len(n.Args) == 3 {
						status, code = n.Args[0], n.Args[1]
					}
				case *ast.CompositeLit:
					if !isHTTPX(n.Type, "Error") {
						return true
					}
					for _, el := range n.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						switch lastName(kv.Key) {
						case "Status":
							status = kv.Value
						case "Code":
							code = kv.Value
						}
					}
				}
				if code == nil {
					return true
				}
				found++
				where := fset.Position(code.Pos()).String()
				c, ok := codes[lastName(code)]
				if lit, isLit := code.(*ast.BasicLit); isLit {
					c, ok = strings.Trim(lit.Value, `"`), true
				}
				if !ok {
					t.Errorf("%s: code %s is not a constant of httpx", where, lastName(code))
					return true
				}
				if _, spec := httpx.SpecMessage(c); spec {
					return true
				}
				if !serverErrorCodes[c] {
					t.Errorf("%s: code %s is not one of the spec's", where, c)
					return true
				}
				if call, isCall := status.(*ast.CallExpr); isCall && lastName(call.Fun) == "upstreamStatus" {
					return true
				}
				if s, known := statuses[lastName(status)]; !known || (s < 500 && s != httpx.StatusClientClosedRequest) {
					t.Errorf("%s: code %s with status %v: a 4xx must use a spec code", where, c, lastName(status))
				}
				return true
			})
		}
	}
	if found < 15 {
		t.Errorf("found only %d errors: the scan no longer sees them", found)
	}
	// upstreamStatus, the status of a transport failure, is a 5xx.
	for _, err := range []error{io.ErrUnexpectedEOF, os.ErrDeadlineExceeded, http.ErrHandlerTimeout} {
		if s := upstreamStatus(err); s < 500 {
			t.Errorf("upstreamStatus(%v) = %d", err, s)
		}
	}
}

// isHTTPX reports whether e names httpx's identifier id: httpx.id, or id
// itself (inside httpx).
func isHTTPX(e ast.Expr, id string) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name == id
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		return ok && x.Name == "httpx" && e.Sel.Name == id
	}
	return false
}

// lastName is the identifier an expression ends in: Errorf for
// httpx.Errorf, CodeUnsupported for httpx.CodeUnsupported; "" for others.
func lastName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

// constants are the string constants of a Go file, by name.
func constants(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, id := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[id.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
		return true
	})
	return out
}

// httpStatusConstants are net/http's Status* constants, read from the
// standard library's source (Go has no reflection over constants).
func httpStatusConstants(t *testing.T) map[string]int {
	t.Helper()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(strings.TrimSpace(string(goroot)), "src", "net", "http", "status.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, id := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.INT {
						out[id.Name], _ = strconv.Atoi(lit.Value)
					}
				}
			}
		}
		return true
	})
	if out["StatusNotFound"] != 404 {
		t.Fatalf("net/http's status constants not found: %v", out)
	}
	return out
}
