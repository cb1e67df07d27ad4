package accounts_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantKind(t *testing.T, err, kind error, contains string) {
	t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), contains) {
		t.Errorf("err = %v, want %v containing %q", err, kind, contains)
	}
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		clock := testutil.NewClock(t0)
		db := openSeeded(t, cfg, accounts.Options{Clock: clock.Now})
		be := db.NewBackend(accounts.BackendOptions{})

		acct, token, err := db.Add(ctx, "ops", "Alice@Example.com", []string{"stable", "beta", "stable"}, t0.AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if acct.Email != "alice@example.com" || !slices.Equal(acct.Channels, []string{"beta", "stable"}) {
			t.Errorf("account %+v", acct)
		}
		if !strings.HasPrefix(token, accounts.TokenPrefix) || len(token) != len(accounts.TokenPrefix)+43 {
			t.Errorf("token %q", token)
		}
		lic, err := be.Lookup(ctx, token)
		if err != nil || lic.Account != "alice@example.com" || !slices.Equal(lic.Channels, []string{"beta", "stable"}) || !lic.ExpiresAt.Equal(t0.AddDate(1, 0, 0)) {
			t.Fatalf("lookup %+v, %v", lic, err)
		}
		for _, tok := range []string{token + "x", "", strings.Repeat("x", 4097)} {
			if _, err := be.Lookup(ctx, tok); !errors.Is(err, license.ErrBadCredentials) {
				t.Errorf("token of %d bytes: err = %v", len(tok), err)
			}
		}
		// The backend names the owner; the cache refuses anyone else, in
		// whatever case the owner types the address.
		cache := license.NewCache(be, license.CacheConfig{})
		if lic, err := cache.Lookup(ctx, license.Credentials{Username: "ALICE@example.com", Token: token}); err != nil || lic.Account != "alice@example.com" {
			t.Errorf("owner's login: %+v, %v", lic, err)
		}
		for _, c := range []license.Credentials{
			{Username: "bob@example.com", Token: token}, // someone else's token
			{Username: "", Token: token},
		} {
			if _, err := cache.Lookup(ctx, c); !errors.Is(err, license.ErrBadCredentials) {
				t.Errorf("%v: err = %v", c, err)
			}
		}

		// Errors a user can hit.
		_, _, err = db.Add(ctx, "ops", "alice@EXAMPLE.com", []string{"stable"}, time.Time{})
		wantKind(t, err, accounts.ErrConflict, "exists already")
		_, _, err = db.Add(ctx, "ops", "bob@example.com", []string{"Stable"}, time.Time{})
		wantKind(t, err, accounts.ErrInvalid, "not a channel name")
		_, _, err = db.Add(ctx, "ops", "bob@example.com", nil, time.Time{})
		wantKind(t, err, accounts.ErrInvalid, "no channels")
		_, _, err = db.Add(ctx, "ops", "bob", []string{"stable"}, time.Time{})
		wantKind(t, err, accounts.ErrInvalid, "not an e-mail address")
		_, _, err = db.Add(ctx, "ops", "bob@example.com", []string{"stable"}, t0.Add(-time.Hour))
		wantKind(t, err, accounts.ErrInvalid, "in the past")
		_, _, err = db.Add(ctx, "", "bob@example.com", []string{"stable"}, time.Time{})
		wantKind(t, err, accounts.ErrInvalid, "actor")
		wantKind(t, db.Grant(ctx, "ops", "nobody@example.com", []string{"beta"}), accounts.ErrNotFound, "no account nobody@example.com")
		wantKind(t, db.Ungrant(ctx, "ops", "alice@example.com", []string{"lts"}), accounts.ErrNotFound, "does not hold channel lts")
		wantKind(t, db.SetState(ctx, "ops", "alice@example.com", accounts.StateActive), accounts.ErrConflict, "active already")
		_, err = db.RevokeToken(ctx, "ops", "alice@example.com", "rgw_nothere")
		wantKind(t, err, accounts.ErrNotFound, "no active token rgw_nothere")
		if l := must[[]accounts.Account](t)(db.List(ctx)); len(l) != 1 {
			t.Fatalf("failed adds left accounts behind: %+v", l)
		}

		// Grants.
		if err := db.Grant(ctx, "ops", "alice@example.com", []string{"lts-2025", "beta"}); err != nil {
			t.Fatal(err)
		}
		if err := db.Ungrant(ctx, "ops", "alice@example.com", []string{"beta"}); err != nil {
			t.Fatal(err)
		}
		a := must[accounts.Account](t)(db.Show(ctx, "alice@example.com"))
		if !slices.Equal(a.Channels, []string{"lts-2025", "stable"}) || len(a.Tokens) != 1 || a.ActiveTokens != 1 {
			t.Errorf("show %+v", a)
		}

		// Tokens: a second one, revoke by prefix, rotate by id.
		tok2, secret2, err := db.AddToken(ctx, "ops", "alice@example.com")
		if err != nil || !strings.HasPrefix(secret2, tok2.Prefix) {
			t.Fatalf("%+v %v", tok2, err)
		}
		_, err = db.RevokeToken(ctx, "ops", "alice@example.com", "")
		wantKind(t, err, accounts.ErrInvalid, "2 active tokens")
		if _, err := db.RevokeToken(ctx, "ops", "alice@example.com", strings.TrimPrefix(a.Tokens[0].Prefix, accounts.TokenPrefix)); err != nil {
			t.Fatal(err)
		}
		if _, err := be.Lookup(ctx, token); !errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("revoked token accepted: %v", err)
		}
		old, created, secret3, err := db.RotateToken(ctx, "ops", "alice@example.com", "")
		if err != nil || old.ID != tok2.ID || created.ID == tok2.ID {
			t.Fatalf("rotate: %+v %+v %v", old, created, err)
		}
		if _, err := be.Lookup(ctx, secret2); !errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("rotated-out token accepted: %v", err)
		}
		if _, err := be.Lookup(ctx, secret3); err != nil {
			t.Errorf("new token refused: %v", err)
		}
		_, err = db.RevokeToken(ctx, "ops", "alice@example.com", "1")
		wantKind(t, err, accounts.ErrNotFound, "no active token 1")

		// Disable, enable, expiry.
		if err := db.SetState(ctx, "ops", "alice@example.com", accounts.StateDisabled); err != nil {
			t.Fatal(err)
		}
		if _, err := be.Lookup(ctx, secret3); !errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("disabled account accepted: %v", err)
		}
		if err := db.SetState(ctx, "ops", "alice@example.com", accounts.StateActive); err != nil {
			t.Fatal(err)
		}
		if err := db.SetExpiry(ctx, "ops", "alice@example.com", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
		if _, err := be.Lookup(ctx, secret3); !errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("expired account accepted: %v", err)
		}
		wantKind(t, db.SetExpiry(ctx, "ops", "alice@example.com", t0), accounts.ErrInvalid, "in the past")
		if err := db.SetExpiry(ctx, "ops", "alice@example.com", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := be.Lookup(ctx, secret3); err != nil {
			t.Errorf("account without expiry refused: %v", err)
		}

		// Delete: gone, and its audit stays.
		if err := db.Delete(ctx, "ops", "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Show(ctx, "alice@example.com"); !errors.Is(err, accounts.ErrNotFound) {
			t.Errorf("show after delete: %v", err)
		}
		if _, err := be.Lookup(ctx, secret3); !errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("deleted account accepted: %v", err)
		}
		audit := must[[]accounts.AuditEntry](t)(db.Audit(ctx, "alice@example.com"))
		var actions []string
		for _, e := range audit {
			actions = append(actions, e.Action)
			if e.Actor != "ops" || strings.Contains(e.Detail, token) || strings.Contains(e.Detail, secret2) {
				t.Errorf("audit entry %+v", e)
			}
		}
		want := []string{"add", "grant", "ungrant", "token.add", "token.revoke", "token.rotate", "disable", "enable", "expire", "expire", "delete"}
		if !slices.Equal(actions, want) {
			t.Errorf("audit %q, want %q", actions, want)
		}
	})
}

func TestImport(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		db := openSeeded(t, cfg, accounts.Options{})
		be := db.NewBackend(accounts.BackendOptions{})
		dir := t.TempDir()
		write := func(name, content string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		good := write("good.yaml", `accounts:
  - username: Carol@example.com
    token_sha256: "`+license.HashToken("carol-token")+`"
    channels: [stable, lts-2025]
    expires: 2099-01-01T00:00:00Z
  - username: dave@example.com
    token_sha256: "`+license.HashToken("dave-token")+`"
    channels: []
`)
		in, err := filebackend.ReadAccounts(good)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := db.Import(ctx, "ops", in); err != nil || n != 2 {
			t.Fatalf("import: %d, %v", n, err)
		}
		lic, err := be.Lookup(ctx, "carol-token")
		if err != nil || !slices.Equal(lic.Channels, []string{"lts-2025", "stable"}) || lic.ExpiresAt.Year() != 2099 {
			t.Errorf("imported account: %+v, %v", lic, err)
		}
		if lic, err := be.Lookup(ctx, "dave-token"); err != nil || len(lic.Channels) != 0 {
			t.Errorf("imported account without channels: %+v, %v", lic, err)
		}
		a := must[accounts.Account](t)(db.Show(ctx, "carol@example.com"))
		if len(a.Tokens) != 1 || a.Tokens[0].Prefix != "" {
			t.Errorf("imported token %+v", a.Tokens)
		}
		// The imported token is revoked by id, having no prefix.
		if _, err := db.RevokeToken(ctx, "ops", "carol@example.com", ""); err != nil {
			t.Fatal(err)
		}

		// Again: every account exists, nothing is added.
		_, err = db.Import(ctx, "ops", in)
		wantKind(t, err, accounts.ErrConflict, "carol@example.com, dave@example.com")
		bad := write("bad.yaml", `accounts:
  - username: erin
    token_sha256: "`+license.HashToken("x")+`"
    channels: [stable]
  - username: frank@example.com
    token_sha256: "`+license.HashToken("y")+`"
    channels: [Beta]
`)
		in, err = filebackend.ReadAccounts(bad)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Import(ctx, "ops", in)
		wantKind(t, err, accounts.ErrInvalid, `"erin" is not an e-mail address`)
		wantKind(t, err, accounts.ErrInvalid, `"Beta" is not a channel name`)
		if l := must[[]accounts.Account](t)(db.List(ctx)); len(l) != 2 {
			t.Errorf("%d accounts after refused imports", len(l))
		}
		if _, err := filebackend.ReadAccounts(write("broken.yaml", "accounts: [{username: x}]\n")); err == nil {
			t.Error("broken licence file read")
		}
	})
}

func TestParseExpiry(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Time{
		"":                     {},
		"never":                {},
		"2027-06-30":           time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC),
		"2027-06-30T12:00:00Z": time.Date(2027, 6, 30, 12, 0, 0, 0, time.UTC),
	} {
		if got, err := accounts.ParseExpiry(in, t0); err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"2026-11-30", "2026-12-01T11:00:00Z", "30.06.2027", "tomorrow"} {
		if _, err := accounts.ParseExpiry(in, t0); !errors.Is(err, accounts.ErrInvalid) {
			t.Errorf("%q accepted: %v", in, err)
		}
	}
}

func TestContextCanceled(t *testing.T) {
	t.Parallel()
	db := openSeeded(t, accountstest.SQLite(t), accounts.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := db.Add(ctx, "ops", "a@example.com", []string{"stable"}, time.Time{}); err == nil {
		t.Error("add with a canceled context succeeded")
	}
	if _, err := db.NewBackend(accounts.BackendOptions{}).Lookup(ctx, "rgw_x"); !errors.Is(err, license.ErrUnavailable) {
		t.Errorf("lookup with a canceled context: %v", err)
	}
}

// ExpiringGrants lists the grants of active accounts ending within the
// window, soonest first: not those without an end, nor ended, nor beyond,
// nor of a disabled account.
func TestExpiringGrants(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		clock := now
		db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return clock }})
		ctx := t.Context()
		day := func(n int) time.Time { return now.AddDate(0, 0, n) }
		for _, ch := range []string{"stable", "beta"} {
			if _, err := db.AddChannel(ctx, "ops", ch, ""); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range []struct {
			email   string
			channel string
			expires time.Time
		}{
			{"alice@example.com", "stable", day(20)},
			{"alice@example.com", "beta", day(31)}, // beyond
			{"bob@example.com", "stable", day(3)},
			{"bob@example.com", "beta", time.Time{}}, // no end
			{"carol@example.com", "stable", day(30)}, // the window's last moment
			{"dave@example.com", "stable", day(5)},   // disabled below
			{"erin@example.com", "stable", day(1)},   // ended below
		} {
			if _, _, err := db.Add(ctx, "ops", a.email, []string{a.channel}, time.Time{}); err != nil && !errors.Is(err, accounts.ErrConflict) {
				t.Fatal(err)
			}
			if _, _, err := db.SetGrant(ctx, "ops", a.email, a.channel, a.expires); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.SetState(ctx, "ops", "dave@example.com", accounts.StateDisabled); err != nil {
			t.Fatal(err)
		}
		clock = day(2) // erin's grant has ended
		got, err := db.ExpiringGrants(ctx, clock, clock.AddDate(0, 0, 28))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, g := range got {
			lines = append(lines, g.Email+" "+g.Channel+" "+g.Expires.Format(time.DateOnly))
		}
		want := "bob@example.com stable 2026-12-10 alice@example.com stable 2026-12-27 carol@example.com stable 2027-01-06"
		if strings.Join(lines, " ") != want {
			t.Errorf("expiring grants %q, want %q", strings.Join(lines, " "), want)
		}
	})
}
