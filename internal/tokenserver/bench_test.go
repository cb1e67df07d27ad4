package tokenserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkGetToken is the hot path: GET /token for a pull, file backend,
// warm cache, logs (access and audit) written as JSON to a discarding sink.
// Run with -cpu 2 to compare with the 10k tokens/s target.
func BenchmarkGetToken(b *testing.B) {
	f := newFixture(b, nil, func(_ *fixture, o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.Clock = nil
	})
	h := f.srv.Handler()
	req := httptest.NewRequest(http.MethodGet, "/token?service=registry.example.com&scope=repository:stable/app:pull&account=alice@example.com", nil)
	req.SetBasicAuth(aliceUser, aliceToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("status %d: %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req.Clone(req.Context()))
			if w.Code != 200 {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
