package tokenserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
)

// BenchmarkGetToken is the hot path: GET /token for a pull, file backend,
// warm cache. "bare" writes its logs (access and audit) as JSON to a
// discarding sink and signs without a certificate; "shipped" is
// deploy/tokenserver.yaml's configuration: the certificate in every
// token's x5c and the log lines at info written to a real file.
// Run with -cpu 2 to compare with the 10k tokens/s target.
func BenchmarkGetToken(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		benchGetToken(b, newFixture(b, nil, func(_ *fixture, o *Options) {
			o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			o.Clock = nil
		}))
	})
	b.Run("shipped", func(b *testing.B) {
		dir := b.TempDir()
		certPath := filepath.Join(dir, "token.crt")
		logFile, err := os.Create(filepath.Join(dir, "tokenserver.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { logFile.Close() })
		benchGetToken(b, newFixture(b, func(c *Config) { c.SigningCert = certPath }, func(f *fixture, o *Options) {
			k, err := os.ReadFile(f.keyPath)
			if err != nil {
				b.Fatal(err)
			}
			signer, err := auth.ParsePrivateKeyPEM(k)
			if err != nil {
				b.Fatal(err)
			}
			writeCert(b, certPath, signer)
			o.Logger = slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
			o.Clock = nil
		}))
	})
}

func benchGetToken(b *testing.B, f *fixture) {
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
	cpu := testutil.StartCPU(b)
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
	cpu.Report()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
