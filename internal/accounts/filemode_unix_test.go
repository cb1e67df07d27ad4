//go:build unix

package accounts_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
)

// The SQLite database and the -wal and -shm files SQLite makes next to it
// are readable by their owner alone: they hold the API token hashes and the
// audit. Checked after writes, with the database open (the -wal and -shm
// files exist only then), for each way of naming the file.
func TestSQLiteFilesArePrivate(t *testing.T) {
	t.Parallel()
	for name, dsn := range map[string]func(path string) string{
		"path":                func(p string) string { return p },
		"file URI with query": func(p string) string { return "file:" + p + "?_pragma=synchronous(NORMAL)" },
		"file URI, authority": func(p string) string { return "file://" + p },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "accounts.db")
			cfg := &accounts.Config{Driver: accounts.DriverSQLite, DSN: dsn(path)}
			cfg.SetDefaults()
			db := openSeeded(t, cfg, accounts.Options{}) // migrates, then writes
			addAlice(t, db)
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if m := fi.Mode().Perm(); m != 0o600 {
					t.Errorf("%s: mode %v, want -rw-------", filepath.Base(p), m)
				}
			}
		})
	}
}

// A database file that exists keeps the mode its operator gave it, and
// SQLite's -wal and -shm files follow it.
func TestSQLiteExistingFileKeepsItsMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil { // whatever the umask
		t.Fatal(err)
	}
	cfg := &accounts.Config{Driver: accounts.DriverSQLite, DSN: path}
	cfg.SetDefaults()
	addAlice(t, openSeeded(t, cfg, accounts.Options{}))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o640 {
			t.Errorf("%s: mode %v, want -rw-r-----", filepath.Base(p), m)
		}
	}
}

// A read-only DSN creates nothing: opening a database that is not there
// fails, as SQLite alone would fail.
func TestSQLiteReadOnlyCreatesNothing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	cfg := &accounts.Config{Driver: accounts.DriverSQLite, DSN: "file:" + path + "?mode=ro"}
	cfg.SetDefaults()
	if db, err := accounts.Open(t.Context(), cfg, accounts.Options{}); err == nil {
		db.Close()
		t.Error("a read-only open of a missing database succeeded")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("stat after a read-only open: %v, want not there", err)
	}
}
