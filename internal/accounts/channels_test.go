package accounts_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// The channel catalogue: grants name its channels only, a typo is refused
// with the channel meant, --create makes them in the same step, and a
// channel still held is removed only by force.
func TestChannels(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		clock := testutil.NewClock(t0)
		db := accountstest.Open(t, cfg, accounts.Options{Clock: clock.Now})
		be := db.NewBackend(accounts.BackendOptions{})

		// Nothing known yet: refused, and nothing written.
		_, _, err := db.Add(ctx, "ops", "alice@example.com", []string{"stable"}, time.Time{})
		wantKind(t, err, accounts.ErrNotFound, `unknown channel "stable" (there are no channels yet)`)
		if l := must[[]accounts.Account](t)(db.List(ctx)); len(l) != 0 {
			t.Fatalf("a refused add left %+v", l)
		}

		// The catalogue.
		c, err := db.AddChannel(ctx, "ops", "stable", "  Released builds ")
		if err != nil || c.Name != "stable" || c.Description != "Released builds" || !c.Created.Equal(t0) {
			t.Fatalf("add stable: %+v %v", c, err)
		}
		if _, err := db.AddChannel(ctx, "ops", "beta", ""); err != nil {
			t.Fatal(err)
		}
		_, err = db.AddChannel(ctx, "ops", "stable", "")
		wantKind(t, err, accounts.ErrConflict, "channel stable exists already")
		_, err = db.AddChannel(ctx, "ops", "Nightly", "")
		wantKind(t, err, accounts.ErrInvalid, "not a channel name")
		_, err = db.AddChannel(ctx, "ops", "nightly", "two\nlines")
		wantKind(t, err, accounts.ErrInvalid, "control characters")
		_, err = db.AddChannel(ctx, "ops", "nightly", strings.Repeat("x", 201))
		wantKind(t, err, accounts.ErrInvalid, "more than 200")
		_, err = db.AddChannel(ctx, "", "nightly", "")
		wantKind(t, err, accounts.ErrInvalid, "actor")

		// A typo is refused with the channel meant; nothing is written.
		_, _, err = db.Add(ctx, "ops", "alice@example.com", []string{"stable", "stabel"}, time.Time{})
		var unknown *accounts.UnknownChannelError
		if !errors.As(err, &unknown) || err.Error() != `unknown channel "stabel"; did you mean "stable"? (known channels: beta, stable)` {
			t.Errorf("add with a typo: %v", err)
		}
		if l := must[[]accounts.Account](t)(db.List(ctx)); len(l) != 0 {
			t.Fatalf("a refused add left %+v", l)
		}

		// CreateChannels makes the missing ones in the same step.
		_, token, err := db.Add(ctx, "ops", "alice@example.com", []string{"stable", "nightly"}, time.Time{}, accounts.CreateChannels())
		if err != nil {
			t.Fatal(err)
		}
		if lic, err := be.Lookup(ctx, token); err != nil || !slices.Equal(lic.Channels, []string{"nightly", "stable"}) {
			t.Errorf("lookup %+v %v", lic, err)
		}
		if _, _, err := db.Add(ctx, "ops", "bob@example.com", []string{"stable"}, time.Time{}); err != nil {
			t.Fatal(err)
		}

		err = db.Grant(ctx, "ops", "bob@example.com", []string{"bta", "xyzzy"})
		wantKind(t, err, accounts.ErrNotFound, `unknown channel "bta"; did you mean "beta"?; unknown channel "xyzzy" (known channels: beta, nightly, stable)`)
		if a := must[accounts.Account](t)(db.Show(ctx, "bob@example.com")); !slices.Equal(a.Channels, []string{"stable"}) {
			t.Errorf("a refused grant changed bob: %+v", a.Channels)
		}
		// Refused all or nothing: the known channel of a refused grant is not granted.
		wantKind(t, db.Grant(ctx, "ops", "bob@example.com", []string{"beta", "lts"}), accounts.ErrNotFound, `unknown channel "lts" (known`)
		if a := must[accounts.Account](t)(db.Show(ctx, "bob@example.com")); !slices.Equal(a.Channels, []string{"stable"}) {
			t.Errorf("a refused grant changed bob: %+v", a.Channels)
		}
		if err := db.Grant(ctx, "ops", "bob@example.com", []string{"beta", "lts"}, accounts.CreateChannels()); err != nil {
			t.Fatal(err)
		}

		got := must[[]accounts.Channel](t)(db.Channels(ctx))
		want := []accounts.Channel{
			{Name: "beta", Created: t0, Accounts: 1},
			{Name: "lts", Created: t0, Accounts: 1},
			{Name: "nightly", Created: t0, Accounts: 1},
			{Name: "stable", Description: "Released builds", Created: t0, Accounts: 2},
		}
		if !slices.Equal(got, want) {
			t.Errorf("channels\n%+v\nwant\n%+v", got, want)
		}

		// Removal: refused while held, naming the holders; forced, taken
		// from them, each in its own audit.
		_, err = db.RemoveChannel(ctx, "ops", "stable", false)
		wantKind(t, err, accounts.ErrConflict, "channel stable is granted to 2 accounts (alice@example.com, bob@example.com)")
		_, err = db.RemoveChannel(ctx, "ops", "stabel", false)
		wantKind(t, err, accounts.ErrNotFound, `unknown channel "stabel"; did you mean "stable"?`)
		holders, err := db.RemoveChannel(ctx, "ops", "stable", true)
		if err != nil || !slices.Equal(holders, []string{"alice@example.com", "bob@example.com"}) {
			t.Fatalf("forced removal: %v %v", holders, err)
		}
		if lic, err := be.Lookup(ctx, token); err != nil || !slices.Equal(lic.Channels, []string{"nightly"}) {
			t.Errorf("lookup after the removal %+v %v", lic, err)
		}
		if holders, err := db.RemoveChannel(ctx, "ops", "lts", false); err == nil || holders != nil {
			t.Errorf("removal of a held channel: %v %v", holders, err)
		}
		if err := db.Ungrant(ctx, "ops", "bob@example.com", []string{"lts"}); err != nil {
			t.Fatal(err)
		}
		if holders, err := db.RemoveChannel(ctx, "ops", "lts", false); err != nil || len(holders) != 0 {
			t.Errorf("removal of a channel nobody holds: %v %v", holders, err)
		}
		names := func() []string {
			var out []string
			for _, c := range must[[]accounts.Channel](t)(db.Channels(ctx)) {
				out = append(out, c.Name)
			}
			return out
		}
		if got := names(); !slices.Equal(got, []string{"beta", "nightly"}) {
			t.Errorf("channels after removals: %v", got)
		}
		// Granted again only once created again.
		wantKind(t, db.Grant(ctx, "ops", "bob@example.com", []string{"stable"}), accounts.ErrNotFound, `unknown channel "stable" (known channels: beta, nightly)`)

		// The admin audit: who made and removed channels, and each
		// account's loss of one.
		var actions []string
		for _, e := range must[[]accounts.AuditEntry](t)(db.Audit(ctx, "")) {
			if strings.HasPrefix(e.Action, "channel.") {
				actions = append(actions, e.Action+" "+e.Detail)
			}
		}
		wantActions := []string{
			`channel.add channel=stable description="Released builds"`,
			"channel.add channel=beta",
			"channel.add channel=nightly (created by add alice@example.com)",
			"channel.add channel=lts (created by grant bob@example.com)",
			"channel.remove channel=stable forced, taken from 2 accounts",
			"channel.remove channel=lts",
		}
		if !slices.Equal(actions, wantActions) {
			t.Errorf("audit\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(wantActions, "\n"))
		}
		var alice []string
		for _, e := range must[[]accounts.AuditEntry](t)(db.Audit(ctx, "alice@example.com")) {
			alice = append(alice, e.Action+" "+e.Detail)
		}
		if len(alice) != 2 || alice[1] != "ungrant channels=stable (channel removed)" {
			t.Errorf("alice's audit %q", alice)
		}
	})
}

// Importing the file backend's accounts makes their channels.
func TestImportMakesChannels(t *testing.T) {
	t.Parallel()
	db := openSeeded(t, accountstest.SQLite(t), accounts.Options{})
	in := []license.FileAccount{
		{Username: "a@example.com", TokenSHA256: license.HashToken("a"), Channels: []string{"stable", "edge"}},
		{Username: "b@example.com", TokenSHA256: license.HashToken("b"), Channels: []string{"edge", "lts-2026"}},
		{Username: "c@example.com", TokenSHA256: license.HashToken("c")},
	}
	if _, err := db.Import(t.Context(), "ops", in); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range must[[]accounts.Channel](t)(db.Channels(t.Context())) {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"beta", "edge", "lts-2025", "lts-2026", "stable"}) {
		t.Errorf("channels after import: %v", names)
	}
}
