package ecr

import (
	"context"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// sdkFetcher points the real SDK, through NewSDKFetcher's default config
// chain, at the fake, with no retries inside the SDK.
func sdkFetcher(t *testing.T, s *ecrfake.Server) *SDKFetcher {
	t.Helper()
	s.SetEnv(t)
	f, err := NewSDKFetcher(context.Background(), "us-east-1", "123456789012",
		ClientOptions{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
