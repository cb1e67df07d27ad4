package accountstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
)

// Customers are the accounts Populate leaves able to log in.
var Customers = []string{"alice@example.com", "carol@example.com", "dave@example.com"}

// The admin keys Populate makes: AdminKey (write, used, no expiry) and
// ExpiringAdminKey (read, expiring in AdminKeyExpiresIn) authenticate,
// RevokedAdminKey does not.
const (
	AdminKey          = "crm"
	ExpiringAdminKey  = "reporting"
	RevokedAdminKey   = "old-script"
	AdminKeyExpiresIn = 90 * 24 * time.Hour
)

// BetaGrantExpiresIn is when alice's grant of beta ends, long before her
// account does.
const BetaGrantExpiresIn = 30 * 24 * time.Hour

// Populate fills db the way months of use would, so that an export has
// every kind of row: channels with descriptions, accounts active, disabled
// (eve), expiring and not, one deleted (ids with a gap), tokens added,
// rotated, revoked, named, used (last_used set) and imported from a
// licence file (no prefix), grants and ungrants, grants with an expiry of
// their own, admin keys, and the audit of all of it. It returns the API
// token of each of Customers, each holding stable, and of the disabled
// eve@example.com, by e-mail, and the key of each admin key above, by its
// name.
func Populate(t testing.TB, db *accounts.DB) map[string]string {
	t.Helper()
	ctx := context.Background()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := db.AddChannel(ctx, "ops", "stable", "released builds")
	check(err)
	_, err = db.AddChannel(ctx, "ops", "beta", "")
	check(err)
	_, err = db.AddChannel(ctx, "ops", "lts-2026", "long-term support, 2026")
	check(err)

	tokens := map[string]string{}
	_, tokens["alice@example.com"], err = db.Add(ctx, "ops", "alice@example.com", []string{"stable", "beta"}, time.Now().AddDate(1, 0, 0))
	check(err)
	_, _, err = db.Add(ctx, "ops", "bob@example.com", []string{"stable"}, time.Time{})
	check(err)
	check(db.Delete(ctx, "ops", "bob@example.com"))
	_, first, err := db.Add(ctx, "sales", "carol@example.com", []string{"stable"}, time.Time{}, accounts.CreateChannels())
	check(err)
	_, _, tokens["carol@example.com"], err = db.RotateToken(ctx, "ops", "carol@example.com", "")
	check(err)
	second, _, err := db.AddNamedToken(ctx, "ops", "carol@example.com", "ci")
	check(err)
	_, err = db.RevokeToken(ctx, "ops", "carol@example.com", second.Prefix)
	check(err)
	_, tokens["eve@example.com"], err = db.Add(ctx, "ops", "eve@example.com", []string{"beta", "lts-2026"}, time.Time{})
	check(err)
	check(db.Ungrant(ctx, "ops", "eve@example.com", []string{"beta"}))
	check(db.SetState(ctx, "ops", "eve@example.com", accounts.StateDisabled))

	// A customer moved from the file backend: a token without a prefix.
	tokens["dave@example.com"] = "dave-file-backend-token"
	sum := sha256.Sum256([]byte(tokens["dave@example.com"]))
	_, err = db.Import(ctx, "ops", []license.FileAccount{{Username: "dave@example.com", TokenSHA256: hex.EncodeToString(sum[:]), Channels: []string{"stable"}}})
	check(err)
	check(db.SetExpiry(ctx, "ops", "dave@example.com", time.Now().AddDate(0, 6, 0)))

	// A trial of beta for alice, and carol's stable until the end of a
	// contract.
	_, _, err = db.SetGrant(ctx, "ops", "alice@example.com", "beta", time.Now().Add(BetaGrantExpiresIn))
	check(err)
	_, _, err = db.SetGrant(ctx, "ops", "carol@example.com", "stable", time.Now().AddDate(2, 0, 0))
	check(err)

	// The admin API's keys: one used, one expiring, one revoked.
	_, tokens[AdminKey], err = db.AddAdminKey(ctx, "ops", AdminKey, accounts.ScopeWrite, time.Time{})
	check(err)
	_, tokens[ExpiringAdminKey], err = db.AddAdminKey(ctx, "ops", ExpiringAdminKey, accounts.ScopeRead, time.Now().Add(AdminKeyExpiresIn))
	check(err)
	_, tokens[RevokedAdminKey], err = db.AddAdminKey(ctx, "ops", RevokedAdminKey, accounts.ScopeWrite, time.Time{})
	check(err)
	_, err = db.RevokeAdminKey(ctx, "ops", RevokedAdminKey)
	check(err)
	_, err = db.AuthenticateAdminKey(ctx, tokens[AdminKey])
	check(err)

	// Logins leave last_used behind; refused ones do not.
	be := db.NewBackend(accounts.BackendOptions{})
	for _, tok := range []string{tokens["alice@example.com"], tokens["dave@example.com"], tokens["eve@example.com"]} {
		be.Lookup(ctx, tok)
	}
	if _, err := be.Lookup(ctx, first); err == nil {
		t.Fatal("a rotated token logs in")
	}
	be.FlushLastUsed(ctx)
	return tokens
}
