package accounts_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// encode is the document as export writes it, with exported_at left out
// so that two exports of the same rows compare equal.
func encode(t *testing.T, doc *accounts.Export) string {
	t.Helper()
	c := *doc
	c.ExportedAt = time.Time{}
	var b bytes.Buffer
	if err := c.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// An export restored into an empty database of either kind exports the
// same again, admin keys, grant expiries and token names included; a
// second import changes nothing and says so; the restored admin keys
// authenticate as they did and a grant past its expiry grants nothing;
// the restored database goes on numbering after the restored ids.
func TestExportRestore(t *testing.T) {
	t.Parallel()
	src := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	tokens := accountstest.Populate(t, src)
	doc, err := src.Export(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if doc.Format != accounts.ExportFormat || doc.Version != 1 || doc.ExportedAt.IsZero() {
		t.Errorf("header %q %d %v", doc.Format, doc.Version, doc.ExportedAt)
	}
	if c := doc.Counts(); c.Accounts != 4 || c.Tokens != 6 || c.Channels != 3 || c.Grants != 5 || c.AuditEntries < 10 || c.AdminKeys != 3 {
		t.Errorf("counts %+v", c)
	}
	// The new columns and table carry what Populate put there.
	var named, grantExpiries int
	for _, k := range doc.APITokens {
		if k.Name != "" {
			named++
		}
	}
	for _, g := range doc.ChannelGrants {
		if !g.Expires.IsZero() {
			grantExpiries++
		}
	}
	var keysRevoked, keysExpiring, keysUsed int
	for _, k := range doc.AdminKeys {
		if k.KeySHA256 == "" || k.Prefix == "" || k.Created.IsZero() {
			t.Errorf("admin key %+v", k)
		}
		if !k.Revoked.IsZero() {
			keysRevoked++
		}
		if !k.Expires.IsZero() {
			keysExpiring++
		}
		if !k.LastUsed.IsZero() {
			keysUsed++
		}
	}
	if named != 1 || grantExpiries != 2 || keysRevoked != 1 || keysExpiring != 1 || keysUsed != 1 {
		t.Errorf("named tokens %d, grant expiries %d, admin keys revoked %d, expiring %d, used %d; want 1, 2, 1, 1, 1",
			named, grantExpiries, keysRevoked, keysExpiring, keysUsed)
	}
	want := encode(t, doc)
	for _, tok := range tokens {
		if strings.Contains(want, tok) {
			t.Fatal("the export holds an API token")
		}
	}
	// Through the bytes a file holds.
	var file bytes.Buffer
	if err := doc.Encode(&file); err != nil {
		t.Fatal(err)
	}

	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		dst := accountstest.Open(t, cfg, accounts.Options{})
		read, err := accounts.ReadExport(bytes.NewReader(file.Bytes()), accounts.MaxExportBytes)
		if err != nil {
			t.Fatal(err)
		}
		res, err := dst.Restore(ctx, read)
		if err != nil || res.Unchanged || res.Counts != doc.Counts() {
			t.Fatalf("restore: %+v, %v", res, err)
		}
		again, err := dst.Export(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := encode(t, again); got != want {
			t.Fatalf("export of the restored database differs:\n%s\nwant:\n%s", got, want)
		}
		res, err = dst.Restore(ctx, read)
		if err != nil || !res.Unchanged {
			t.Fatalf("second restore: %+v, %v", res, err)
		}
		if got := encode(t, must[*accounts.Export](t)(dst.Export(ctx))); got != want {
			t.Fatal("a second import changed the database")
		}

		// The restored admin keys authenticate as they did: the hash,
		// scope, expiry and revocation came along.
		for name, scope := range map[string]string{accountstest.AdminKey: accounts.ScopeWrite, accountstest.ExpiringAdminKey: accounts.ScopeRead} {
			k, err := dst.AuthenticateAdminKey(ctx, tokens[name])
			if err != nil || k.Name != name || k.Scope != scope {
				t.Errorf("admin key %s after the restore: %+v, %v", name, k, err)
			}
		}
		if _, err := dst.AuthenticateAdminKey(ctx, tokens[accountstest.RevokedAdminKey]); !errors.Is(err, accounts.ErrUnauthorized) {
			t.Errorf("the revoked admin key after the restore: %v", err)
		}
		// Past the beta grant's expiry (and the expiring admin key's),
		// on the restored database: alice keeps stable, beta is not
		// served, the expiring key is refused.
		later := time.Now().Add(accountstest.AdminKeyExpiresIn + time.Hour)
		if later.Before(time.Now().Add(accountstest.BetaGrantExpiresIn)) {
			t.Fatal("the clock below is not past the beta grant's expiry")
		}
		future, err := accounts.Open(ctx, cfg, accounts.Options{Clock: func() time.Time { return later }})
		if err != nil {
			t.Fatal(err)
		}
		defer future.Close()
		lic, err := future.NewBackend(accounts.BackendOptions{}).Lookup(ctx, tokens["alice@example.com"])
		if err != nil || !slices.Equal(lic.Channels, []string{"stable"}) {
			t.Errorf("alice past her beta grant's expiry: %+v, %v; want stable alone", lic, err)
		}
		if _, err := future.AuthenticateAdminKey(ctx, tokens[accountstest.ExpiringAdminKey]); !errors.Is(err, accounts.ErrUnauthorized) {
			t.Errorf("the expiring admin key past its expiry: %v", err)
		}
		lic, err = dst.NewBackend(accounts.BackendOptions{}).Lookup(ctx, tokens["alice@example.com"])
		if err != nil || !slices.Equal(lic.Channels, []string{"beta", "stable"}) {
			t.Errorf("alice before her beta grant's expiry: %+v, %v", lic, err)
		}

		// Numbering goes on after the restored ids (PostgreSQL's
		// sequences are set by the restore).
		_, _, err = dst.Add(ctx, "ops", "frank@example.com", []string{"stable"}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := dst.AddToken(ctx, "ops", "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if last := doc.APITokens[len(doc.APITokens)-1].ID; tok.ID <= last+1 {
			t.Errorf("new token id %d, want after %d", tok.ID, last+1)
		}
		after := must[*accounts.Export](t)(dst.Export(ctx))
		if a := after.AdminAudit; a[len(a)-1].ID <= doc.AdminAudit[len(doc.AdminAudit)-1].ID {
			t.Errorf("audit id %d reuses a restored one", a[len(a)-1].ID)
		}

		// Now the database differs from the document: refused, nothing
		// changed.
		_, err = dst.Restore(ctx, read)
		wantKind(t, err, accounts.ErrConflict, "not empty and differs")
		if got := encode(t, must[*accounts.Export](t)(dst.Export(ctx))); got != encode(t, after) {
			t.Error("a refused import changed the database")
		}
	})
}

// A database with any row of its own besides its migrations is not empty,
// even with no account: the import is refused and changes nothing.
func TestRestoreRefusesNonEmpty(t *testing.T) {
	t.Parallel()
	src := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	accountstest.Populate(t, src)
	doc := must[*accounts.Export](t)(src.Export(t.Context()))

	dst := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	if _, err := dst.AddChannel(t.Context(), "ops", "nightly", ""); err != nil {
		t.Fatal(err)
	}
	before := encode(t, must[*accounts.Export](t)(dst.Export(t.Context())))
	_, err := dst.Restore(t.Context(), doc)
	wantKind(t, err, accounts.ErrConflict, "1 channels")
	if got := encode(t, must[*accounts.Export](t)(dst.Export(t.Context()))); got != before {
		t.Error("a refused import changed the database")
	}
}

// Every way a document can be unusable is refused with where and why, and
// never quotes a token hash.
func TestReadExportRefuses(t *testing.T) {
	t.Parallel()
	src := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	accountstest.Populate(t, src)
	var good bytes.Buffer
	if err := must[*accounts.Export](t)(src.Export(t.Context())).Encode(&good); err != nil {
		t.Fatal(err)
	}
	// edit decodes the good document, lets f change it and encodes it.
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	row := func(m map[string]any, section string, i int) map[string]any {
		return m[section].([]any)[i].(map[string]any)
	}
	hash := row(func() map[string]any {
		var m map[string]any
		json.Unmarshal(good.Bytes(), &m)
		return m
	}(), "api_tokens", 0)["token_sha256"].(string)

	var keyHashes []string
	for _, k := range must[*accounts.Export](t)(accounts.ReadExport(bytes.NewReader(good.Bytes()), accounts.MaxExportBytes)).AdminKeys {
		keyHashes = append(keyHashes, k.KeySHA256)
	}
	if len(keyHashes) == 0 {
		t.Fatal("no admin keys in the document")
	}

	for _, tc := range []struct {
		name, doc, want string
		limit           int64
	}{
		{name: "not JSON", doc: "accounts: []", want: "not an accounts export"},
		{name: "JSON array", doc: "[]", want: "not an accounts export"},
		{name: "no format", doc: edit(func(m map[string]any) { delete(m, "format") }), want: `"format" is not`},
		{name: "other format", doc: edit(func(m map[string]any) { m["format"] = "something-else" }), want: `"format" is not`},
		{name: "newer version", doc: edit(func(m map[string]any) { m["version"] = 2 }), want: "version 2, newer than this tokenserver reads (1)"},
		{name: "no version", doc: edit(func(m map[string]any) { delete(m, "version") }), want: `"version" is missing`},
		{name: "unknown section", doc: edit(func(m map[string]any) { m["webhooks"] = []any{} }), want: `unknown section "webhooks"`},
		{name: "missing section", doc: edit(func(m map[string]any) { delete(m, "admin_audit") }), want: `missing "admin_audit"`},
		{name: "unknown field", doc: edit(func(m map[string]any) { row(m, "accounts", 0)["plan"] = "gold" }), want: `unknown field "plan"`},
		{name: "trailing data", doc: good.String() + "{}", want: "not an accounts export"},
		{name: "too large", doc: good.String(), limit: int64(good.Len() - 1), want: "larger than"},
		{name: "duplicate account id", doc: edit(func(m map[string]any) { row(m, "accounts", 1)["id"] = row(m, "accounts", 0)["id"] }), want: "accounts[1].id"},
		{name: "upper-case e-mail", doc: edit(func(m map[string]any) { row(m, "accounts", 0)["email"] = "Alice@example.com" }), want: "accounts[0].email"},
		{name: "bad state", doc: edit(func(m map[string]any) { row(m, "accounts", 0)["state"] = "gone" }), want: "accounts[0].state"},
		{name: "missing created", doc: edit(func(m map[string]any) { delete(row(m, "accounts", 0), "created") }), want: "accounts[0].created: missing"},
		{name: "fraction of a second", doc: edit(func(m map[string]any) { row(m, "accounts", 0)["created"] = "2026-01-02T03:04:05.5Z" }), want: "not a whole second"},
		{name: "token of no account", doc: edit(func(m map[string]any) { row(m, "api_tokens", 0)["account_id"] = 999 }), want: "api_tokens[0].account_id: no account 999"},
		{name: "bad hash", doc: edit(func(m map[string]any) { row(m, "api_tokens", 0)["token_sha256"] = strings.ToUpper(hash) }), want: "api_tokens[0].token_sha256"},
		{name: "duplicate hash", doc: edit(func(m map[string]any) { row(m, "api_tokens", 1)["token_sha256"] = hash }), want: "api_tokens[1].token_sha256"},
		{name: "bad channel", doc: edit(func(m map[string]any) { row(m, "channels", 0)["name"] = "Stable" }), want: "channels[0].name"},
		{name: "bad description", doc: edit(func(m map[string]any) { row(m, "channels", 0)["description"] = " padded " }), want: "channels[0].description"},
		{name: "grant of no channel", doc: edit(func(m map[string]any) { row(m, "channel_grants", 0)["channel"] = "nightly" }), want: `channel_grants[0].channel: no channel "nightly"`},
		{name: "grant of no account", doc: edit(func(m map[string]any) { row(m, "channel_grants", 0)["account_id"] = 999 }), want: "channel_grants[0].account_id"},
		{name: "audit without actor", doc: edit(func(m map[string]any) { row(m, "admin_audit", 0)["actor"] = "" }), want: "admin_audit[0]: actor and action"},
		{name: "grant expiry fraction", doc: edit(func(m map[string]any) { row(m, "channel_grants", 0)["expires"] = "2027-01-02T03:04:05.5Z" }), want: "channel_grants[0].expires: 2027-01-02T03:04:05.5Z is not a whole second"},
		{name: "bad token name", doc: edit(func(m map[string]any) { row(m, "api_tokens", 0)["name"] = "two words" }), want: `api_tokens[0].name: "two words" is not a token name`},
		{name: "admin key id twice", doc: edit(func(m map[string]any) { row(m, "admin_keys", 1)["id"] = row(m, "admin_keys", 0)["id"] }), want: "admin_keys[1].id"},
		{name: "admin key name twice", doc: edit(func(m map[string]any) { row(m, "admin_keys", 1)["name"] = row(m, "admin_keys", 0)["name"] }), want: "admin_keys[1].name"},
		{name: "bad admin key name", doc: edit(func(m map[string]any) { row(m, "admin_keys", 0)["name"] = "" }), want: "admin_keys[0].name"},
		{name: "bad admin key scope", doc: edit(func(m map[string]any) { row(m, "admin_keys", 0)["scope"] = "admin" }), want: `admin_keys[0].scope: "admin" is not read or write`},
		{name: "upper-case admin key hash", doc: edit(func(m map[string]any) {
			row(m, "admin_keys", 0)["key_sha256"] = strings.ToUpper(row(m, "admin_keys", 0)["key_sha256"].(string))
		}), want: "admin_keys[0].key_sha256: not a lower-case hex SHA-256"},
		{name: "admin key hash twice", doc: edit(func(m map[string]any) { row(m, "admin_keys", 1)["key_sha256"] = row(m, "admin_keys", 0)["key_sha256"] }), want: "admin_keys[1].key_sha256"},
		{name: "admin key hash too long", doc: edit(func(m map[string]any) { row(m, "admin_keys", 0)["key_sha256"] = hash + "0" }), want: "admin_keys[0].key_sha256"},
		{name: "admin key missing created", doc: edit(func(m map[string]any) { delete(row(m, "admin_keys", 0), "created") }), want: "admin_keys[0].created: missing"},
		{name: "admin key revoked fraction", doc: edit(func(m map[string]any) { row(m, "admin_keys", 0)["revoked"] = "2026-01-02T03:04:05.25Z" }), want: "admin_keys[0].revoked"},
		{name: "admin key unknown field", doc: edit(func(m map[string]any) { row(m, "admin_keys", 0)["key"] = "rgwa_x" }), want: `unknown field "key"`},
		{name: "audit id twice", doc: edit(func(m map[string]any) { row(m, "admin_audit", 1)["id"] = row(m, "admin_audit", 0)["id"] }), want: "admin_audit[1].id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = accounts.MaxExportBytes
			}
			_, err := accounts.ReadExport(strings.NewReader(tc.doc), limit)
			wantKind(t, err, accounts.ErrInvalid, tc.want)
			if err != nil && strings.Contains(err.Error(), hash) {
				t.Error("the error quotes a token hash")
			}
			for _, k := range keyHashes {
				if err != nil && strings.Contains(strings.ToLower(err.Error()), k) {
					t.Error("the error quotes an admin key hash")
				}
			}
		})
	}
	if _, err := accounts.ReadExport(bytes.NewReader(good.Bytes()), accounts.MaxExportBytes); err != nil {
		t.Fatalf("the good document: %v", err)
	}
}

// A document written before admin keys were exported has no "admin_keys":
// it is read as holding none, and restored.
func TestReadExportWithoutAdminKeys(t *testing.T) {
	t.Parallel()
	src := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	accountstest.Populate(t, src)
	doc := must[*accounts.Export](t)(src.Export(t.Context()))
	doc.AdminKeys = nil
	var b bytes.Buffer
	if err := doc.Encode(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "admin_keys")
	old, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	read, err := accounts.ReadExport(bytes.NewReader(old), accounts.MaxExportBytes)
	if err != nil {
		t.Fatal(err)
	}
	if read.AdminKeys == nil || len(read.AdminKeys) != 0 {
		t.Fatalf("admin keys %#v, want none", read.AdminKeys)
	}
	dst := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	if _, err := dst.Restore(t.Context(), read); err != nil {
		t.Fatal(err)
	}
	if got := must[*accounts.Export](t)(dst.Export(t.Context())); len(got.AdminKeys) != 0 || len(got.Accounts) != len(doc.Accounts) {
		t.Errorf("restored %+v", got.Counts())
	}
}
