package admin

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"

	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// TestMain also checks, after a run of every test, that the API tests
// exercised every operation of the document.
func TestMain(m *testing.M) {
	os.Exit(accountstest.Main(runner{m}))
}

type runner struct{ m *testing.M }

func (r runner) Run() int {
	code := r.m.Run()
	if code != 0 || flag.Lookup("test.run").Value.String() != "" || testing.Short() {
		return code
	}
	doc := loadDocument(nil)
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := covered.Load(method + " " + path); !ok {
				missing = append(missing, method+" "+path)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		fmt.Fprintf(os.Stderr, "FAIL: operations of openapi.yaml no test sent a request to: %s\n", strings.Join(missing, ", "))
		return 1
	}
	return code
}

// covered are the operations ("GET /accounts") the tests exercised.
var covered sync.Map

// loadDocument loads and validates openapi.yaml; with t nil it panics on a
// problem.
func loadDocument(t testing.TB) *openapi3.T {
	fail := func(err error) {
		if t == nil {
			panic(err)
		}
		t.Helper()
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPIJSON())
	if err != nil {
		fail(err)
		return nil
	}
	if err := doc.Validate(context.Background()); err != nil {
		fail(fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err))
	}
	return doc
}

// The document is valid OpenAPI 3.1, served as JSON, and it has exactly
// the router's routes.
func TestRoutesMatchDocument(t *testing.T) {
	doc := loadDocument(t)
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	var inDoc, inRouter []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inDoc = append(inDoc, method+" "+Prefix+path)
		}
	}
	r := (&api{}).routes().(chi.Routes)
	if err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		inRouter = append(inRouter, method+" "+strings.TrimSuffix(route, "/"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(inDoc)
	slices.Sort(inRouter)
	if !slices.Equal(inDoc, inRouter) {
		t.Errorf("routes differ\ndocument: %q\nrouter:   %q", inDoc, inRouter)
	}
}

// validating is a transport that checks every request and answer of the
// API tests against the document: the answer must be one the document
// describes for that operation and status, and a request the document
// refuses must be refused by the server too.
type validating struct {
	t      testing.TB
	next   http.RoundTripper
	router routers.Router
}

func newValidating(t testing.TB, base string) *validating {
	doc := loadDocument(t)
	doc.Servers = openapi3.Servers{{URL: base + Prefix}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &validating{t: t, next: http.DefaultTransport, router: router}
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	t := v.t
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	reset := func() {
		if req.Body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	reset()
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		// Not an operation of the document: the server must say 404 or
		// 405 (the tests of unknown paths send such requests).
		resp, rerr := v.next.RoundTrip(req)
		if rerr == nil && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s is not in the document, yet answered %d", req.Method, req.URL.Path, resp.StatusCode)
		}
		return resp, rerr
	}
	covered.Store(req.Method+" "+route.Path, true)
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(req.Context(), in)
	reset()
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if reqErr != nil && resp.StatusCode < 400 {
		t.Errorf("%s %s: the document refuses the request (%v), the server answered %d", req.Method, req.URL, reqErr, resp.StatusCode)
	}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	rin.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(req.Context(), rin); err != nil {
		t.Errorf("%s %s: answer %d does not match the document: %v\n%s", req.Method, req.URL, resp.StatusCode, err, respBody)
	}
	return resp, nil
}
