package gateway_test

// Micro-benchmarks of the route parser, which runs on every request the
// gateway serves. `make bench` runs them with -benchmem; `make test` never
// does.

import (
	"testing"

	"github.com/acme/registry-gateway/internal/gateway"
)

func BenchmarkParseRoute(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"base", "/v2/"},
		{"manifest-tag", "/v2/stable/app/manifests/latest"},
		{"manifest-digest", "/v2/stable/team/app/manifests/sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"},
		{"blob", "/v2/stable/app/blobs/sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"},
		{"tags", "/v2/stable/app/tags/list"},
		{"catalog", "/v2/_catalog"},
		{"refused-encoded", "/v2/stable%2F..%2Fother/manifests/latest"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := gateway.ParseRoute(bc.path)
				if err == nil {
					_ = r.UpstreamPath("acme/")
				}
			}
		})
	}
}

// BenchmarkRouteScope is the scope string the authorizer checks a token
// against.
func BenchmarkRouteScope(b *testing.B) {
	r, err := gateway.ParseRoute("/v2/stable/app/manifests/latest")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Scope()
	}
}
