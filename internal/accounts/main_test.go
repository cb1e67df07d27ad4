package accounts_test

import (
	"os"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestMain(m *testing.M) { os.Exit(accountstest.Main(m)) }

// seeded are the channels in the catalogue of an openSeeded database.
var seeded = []string{"beta", "lts-2025", "stable"}

// openSeeded is accountstest.Open with the channels the tests grant in the
// catalogue, as a vendor creates them before granting them.
func openSeeded(t testing.TB, cfg *accounts.Config, opts accounts.Options) *accounts.DB {
	t.Helper()
	db := accountstest.Open(t, cfg, opts)
	for _, ch := range seeded {
		if _, err := db.AddChannel(t.Context(), "test", ch, ""); err != nil {
			t.Fatal(err)
		}
	}
	return db
}
