package accounts_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestMigrations(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		db, err := accounts.Open(ctx, cfg, accounts.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()

		// Empty: refused, with the command to run.
		var se *accounts.SchemaError
		if err := db.CheckSchema(ctx); !errors.As(err, &se) || se.Have != 0 || !strings.Contains(err.Error(), "tokenserver accounts migrate") {
			t.Fatalf("empty database: %v", err)
		}

		// Up to the version before the channel catalogue (free-text
		// grants), with an account in it.
		const prev = 2
		if applied, err := db.MigrateTo(ctx, "test", prev); err != nil || len(applied) != prev {
			t.Fatalf("migrate to %d: %v %v", prev, applied, err)
		}
		if err := db.CheckSchema(ctx); !errors.As(err, &se) || se.Have != prev || !strings.Contains(err.Error(), "older") {
			t.Fatalf("previous version: %v", err)
		}
		raw := rawDB(t, cfg)
		if _, err := raw.ExecContext(ctx, "INSERT INTO accounts (email, state, created_at) VALUES ('old@example.com', 'active', 1)"); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, "INSERT INTO api_tokens (account_id, token_sha256, prefix, created_at) SELECT id, '"+license.HashToken("old-token")+"', '', 1 FROM accounts"); err != nil {
			t.Fatal(err)
		}
		// Its grants, and another account's: free text before the catalogue.
		if _, err := raw.ExecContext(ctx, "INSERT INTO accounts (email, state, created_at) VALUES ('other@example.com', 'active', 1)"); err != nil {
			t.Fatal(err)
		}
		for _, g := range []struct {
			email, channel string
			at             int
		}{{"old@example.com", "stable", 5}, {"old@example.com", "beta", 3}, {"other@example.com", "stable", 2}} {
			if _, err := raw.ExecContext(ctx, fmt.Sprintf("INSERT INTO channel_grants (account_id, channel, granted_at) SELECT id, '%s', %d FROM accounts WHERE email = '%s'", g.channel, g.at, g.email)); err != nil {
				t.Fatal(err)
			}
		}

		// Up from the previous version: the account survives and works.
		applied, err := db.Migrate(ctx, "test")
		if err != nil || len(applied) != accounts.SchemaVersion()-prev || applied[0] != prev+1 {
			t.Fatalf("migrate: %v %v", applied, err)
		}
		if err := db.CheckSchema(ctx); err != nil {
			t.Fatal(err)
		}
		if lic, err := db.NewBackend(accounts.BackendOptions{}).Lookup(ctx, "old-token"); err != nil || !slices.Equal(lic.Channels, []string{"beta", "stable"}) {
			t.Errorf("account from before the migration: %+v %v", lic, err)
		}
		if err := db.Grant(ctx, "test", "old@example.com", []string{"stable"}); err != nil {
			t.Errorf("admin change after the migration: %v", err)
		}
		// The catalogue is the channels granted before, each created when
		// it was first granted.
		channels, err := db.Channels(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(channels) != 2 || channels[0].Name != "beta" || channels[0].Created.Unix() != 3 || channels[0].Accounts != 1 ||
			channels[1].Name != "stable" || channels[1].Created.Unix() != 2 || channels[1].Accounts != 2 {
			t.Errorf("catalogue after the migration: %+v", channels)
		}
		err = db.Grant(ctx, "test", "other@example.com", []string{"stabel"})
		var unknown *accounts.UnknownChannelError
		if !errors.As(err, &unknown) || !errors.Is(err, accounts.ErrNotFound) ||
			err.Error() != `unknown channel "stabel"; did you mean "stable"? (known channels: beta, stable)` {
			t.Errorf("grant of a typo after the migration: %v", err)
		}
		// The grants refer to the catalogue: the database itself refuses a
		// grant of a channel it lacks.
		fk := rawDBForeignKeys(t, cfg)
		if _, err := fk.ExecContext(ctx, "INSERT INTO channel_grants (account_id, channel, granted_at) SELECT id, 'nightly', 1 FROM accounts WHERE email = 'other@example.com'"); err == nil {
			t.Error("a grant of a channel outside the catalogue was stored")
		}
		// Again: nothing to do.
		if applied, err := db.Migrate(ctx, "test"); err != nil || len(applied) != 0 {
			t.Errorf("second migrate: %v %v", applied, err)
		}
		audit, err := db.Audit(ctx, "")
		if err != nil || len(audit) < accounts.SchemaVersion() || audit[0].Action != "migrate" {
			t.Errorf("audit %+v %v", audit, err)
		}

		// A schema from a newer binary: refused by the check and by migrate.
		if _, err := raw.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 1)"); err != nil {
			t.Fatal(err)
		}
		if err := db.CheckSchema(ctx); !errors.As(err, &se) || se.Have != 99 || !strings.Contains(err.Error(), "upgrade the tokenserver") {
			t.Errorf("newer schema: %v", err)
		}
		if _, err := db.Migrate(ctx, "test"); !errors.As(err, &se) {
			t.Errorf("migrate on a newer schema: %v", err)
		}
		if _, err := db.MigrateTo(ctx, "test", 0); err == nil {
			t.Error("MigrateTo(0) accepted")
		}
	})
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, cfg := range []*accounts.Config{
		nil,
		{Driver: "mysql", DSN: "x"},
		{Driver: accounts.DriverSQLite, DSNFile: "/nonexistent/dsn"},
		{Driver: accounts.DriverSQLite, DSN: "/nonexistent/dir/accounts.db"},
		{Driver: accounts.DriverPostgres, DSN: "postgres://u:SECRETPW@127.0.0.1:1/db?connect_timeout=1"},
	} {
		db, err := accounts.Open(ctx, cfg, accounts.Options{})
		if err == nil {
			db.Close()
			t.Errorf("%+v opened", cfg)
			continue
		}
		if strings.Contains(err.Error(), "SECRETPW") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// dsn_file: the DSN comes from a file (a mounted secret), trimmed.
func TestDSNFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsn, []byte(filepath.Join(dir, "accounts.db")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := accounts.Open(t.Context(), &accounts.Config{Driver: accounts.DriverSQLite, DSNFile: dsn}, accounts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.WriteFile(dsn, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.Open(t.Context(), &accounts.Config{Driver: accounts.DriverSQLite, DSNFile: dsn}, accounts.Options{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty dsn_file: %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	t.Parallel()
	cfg := accounts.Config{Driver: "oracle", DSN: "x", DSNFile: "y", RevocationPoll: 5 * 1e9, LastUsedFlush: 1}
	errs := cfg.Problems("licenses.sql")
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"licenses.sql.driver", "licenses.sql.dsn: set exactly one", "licenses.sql.revocation_poll", "licenses.sql.last_used_flush"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems lack %q:\n%s", want, joined)
		}
	}
	good := accounts.Config{Driver: accounts.DriverPostgres, DSNFile: "f"}
	good.SetDefaults()
	if errs := good.Problems("x"); len(errs) > 0 {
		t.Errorf("good config: %v", errs)
	}
}

// rawDBForeignKeys is rawDB with SQLite's checks of foreign keys on, as
// the package's connections have them (PostgreSQL's are always on).
func rawDBForeignKeys(t *testing.T, cfg *accounts.Config) *sql.DB {
	t.Helper()
	if cfg.Driver == accounts.DriverSQLite {
		c := *cfg
		c.DSN = "file:" + cfg.DSN + "?_pragma=foreign_keys(1)"
		cfg = &c
	}
	return rawDB(t, cfg)
}

// rawDB connects to cfg's database without the package, to set up what
// the package would not write.
func rawDB(t *testing.T, cfg *accounts.Config) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", cfg.DSN
	if cfg.Driver == accounts.DriverPostgres {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
