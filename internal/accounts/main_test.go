package accounts_test

import (
	"context"
	"os"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts/accountstest"
)

func TestMain(m *testing.M) { os.Exit(accountstest.Main(m)) }

// contextWithStop is a context canceled by stop or at the end of the test.
func contextWithStop(t *testing.T) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}
