package accounts_test

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// The online backups docs/accounts.md gives, taken while the database is
// open and written to: each copy opens at the current schema and holds
// what the database held.

// SQLite: VACUUM INTO through the driver the service uses, and the sqlite3
// shell's .backup, each into an empty file made 0600 first (the copy
// holds the token hashes; SQLite keeps an existing file's mode).
func TestSQLiteOnlineBackup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := accountstest.SQLite(t)
	db := accountstest.Open(t, cfg, accounts.Options{})
	accountstest.Populate(t, db)
	want := encode(t, must[*accounts.Export](t)(db.Export(ctx)))

	dir := t.TempDir()
	empty := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vacuumed := empty("vacuum-into.db")
	raw, err := sql.Open("sqlite", cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, "VACUUM INTO ?", vacuumed); err != nil {
		t.Fatalf("VACUUM INTO: %v", err)
	}
	copies := []string{vacuumed}
	if sqlite3, err := exec.LookPath("sqlite3"); err == nil {
		backedUp := empty("dot-backup.db")
		if out, err := exec.CommandContext(ctx, sqlite3, cfg.DSN, ".backup '"+backedUp+"'").CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 .backup: %v\n%s", err, out)
		}
		copies = append(copies, backedUp)
	} else {
		t.Log("no sqlite3 shell: .backup not tried")
	}
	// The database goes on changing after the copies.
	if _, _, err := db.Add(ctx, "ops", "late@example.com", []string{"stable"}, must[*accounts.Export](t)(db.Export(ctx)).ExportedAt.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	for _, p := range copies {
		if fi, err := os.Stat(p); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
			t.Errorf("%s: %v %v, want mode 0600", p, fi.Mode(), err)
		}
		c := &accounts.Config{Driver: accounts.DriverSQLite, DSN: p}
		c.SetDefaults()
		copyDB, err := accounts.Open(ctx, c, accounts.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer copyDB.Close()
		if err := copyDB.CheckSchema(ctx); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := encode(t, must[*accounts.Export](t)(copyDB.Export(ctx))); got != want {
			t.Errorf("%s holds other rows:\n%s\nwant:\n%s", p, got, want)
		}
	}
}

// PostgreSQL: pg_dump -Fc while the database is open, pg_restore into an
// empty database; the restored one goes on numbering (pg_dump carries the
// sequences).
func TestPostgresDumpRestore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := accountstest.Shared(t)
	cfg := pg.NewDatabase(t)
	db := accountstest.Open(t, cfg, accounts.Options{})
	accountstest.Populate(t, db)
	want := encode(t, must[*accounts.Export](t)(db.Export(ctx)))

	dump := filepath.Join(t.TempDir(), "accounts.dump")
	if out, err := exec.CommandContext(ctx, pg.Tool("pg_dump"), "--format=custom", "--file="+dump, "--dbname="+cfg.DSN).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	restored := pg.NewDatabase(t)
	if out, err := exec.CommandContext(ctx, pg.Tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname="+restored.DSN, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	r, err := accounts.Open(ctx, restored, accounts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if got := encode(t, must[*accounts.Export](t)(r.Export(ctx))); got != want {
		t.Errorf("the restored database holds other rows:\n%s\nwant:\n%s", got, want)
	}
	if _, _, err := r.AddToken(ctx, "ops", "alice@example.com"); err != nil {
		t.Errorf("a new token in the restored database: %v", err)
	}
}
