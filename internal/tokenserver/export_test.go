package tokenserver

import (
	"bytes"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// A vendor outgrows one machine: the SQLite database is exported, imported
// into an empty PostgreSQL one, and the token service started on it. Every
// customer's token logs in with the channels it had, the disabled, revoked
// and rotated-away tokens stay refused, and the export of the restored
// database equals the original.
func TestSQLiteToPostgresRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	tokens := accountstest.Populate(t, src)
	doc, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if err := doc.Encode(&file); err != nil {
		t.Fatal(err)
	}
	src.Close()

	cfg := accountstest.Shared(t).NewDatabase(t)
	dst := accountstest.Open(t, cfg, accounts.Options{})
	read, err := accounts.ReadExport(&file, accounts.MaxExportBytes)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := dst.Restore(ctx, read); err != nil || res.Unchanged {
		t.Fatalf("restore: %+v, %v", res, err)
	}

	again, err := dst.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc.ExportedAt, again.ExportedAt = time.Time{}, time.Time{}
	var want, got bytes.Buffer
	doc.Encode(&want)
	again.Encode(&got)
	if got.String() != want.String() {
		t.Errorf("export of the restored database differs before any login:\n%s\nwant:\n%s", got.String(), want.String())
	}

	key := filepath.Join(t.TempDir(), "token.key")
	writeECKey(t, key)
	base, _ := newSQLReplica(t, key, cfg)
	for _, user := range accountstest.Customers {
		waitFor(t, user+" logs in", func() bool {
			return get(t, base, user, tokens[user], scopes()).StatusCode == http.StatusOK
		})
		if got := granted(t, get(t, base, user, tokens[user], scopes("repository:stable/app:pull"))); got != "stable/app" {
			t.Errorf("%s: granted %q", user, got)
		}
	}
	// alice held beta too; carol did not.
	if got := granted(t, get(t, base, "alice@example.com", tokens["alice@example.com"], scopes("repository:beta/app:pull"))); got != "beta/app" {
		t.Errorf("alice on beta: granted %q", got)
	}
	if got := granted(t, get(t, base, "carol@example.com", tokens["carol@example.com"], scopes("repository:beta/app:pull"))); got != "" {
		t.Errorf("carol on beta: granted %q", got)
	}
	if resp := get(t, base, "eve@example.com", tokens["eve@example.com"], scopes()); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("disabled eve: %d", resp.StatusCode)
	}
	// A token of one customer is not another's.
	if resp := get(t, base, "carol@example.com", tokens["alice@example.com"], scopes()); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("alice's token as carol: %d", resp.StatusCode)
	}

}

// granted is the repositories a token answer grants pull on, joined by
// spaces.
func granted(t *testing.T, resp *http.Response) string {
	t.Helper()
	access, _ := rawClaims(t, mustToken(t, resp).AccessToken)["access"].([]any)
	var names []string
	for _, a := range access {
		if m, ok := a.(map[string]any); ok && slices.Contains(m["actions"].([]any), any("pull")) {
			names = append(names, m["name"].(string))
		}
	}
	return strings.Join(names, " ")
}
