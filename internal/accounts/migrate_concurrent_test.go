package accounts_test

import (
	"sync"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// Migrations started at once on one empty database (two releases'
// migration Jobs, a Job and an operator) all succeed: each takes the
// database's lock (PostgreSQL's advisory lock, SQLite's write lock) and
// applies only what is still missing, so every step is applied once.
// Without the lock they read the same version and the later ones fail on
// a table that already exists or on schema_migrations' primary key.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		// SQLite's runs are short enough to miss each other now and then
		// without a lock: several rounds, each on a fresh database, so
		// that a missing lock fails every time in practice.
		rounds := 1
		if cfg.Driver == accounts.DriverSQLite {
			rounds = 10
		}
		for round := range rounds {
			if round > 0 {
				cfg = accountstest.SQLite(t)
			}
			migrateConcurrently(t, cfg)
		}
	})
}

// migrateConcurrently runs four migrations of the empty database cfg at
// once, each through its own connections as separate processes would.
func migrateConcurrently(t *testing.T, cfg *accounts.Config) {
	t.Helper()
	ctx := t.Context()
	dbs := make([]*accounts.DB, 4)
	for i := range dbs {
		db, err := accounts.Open(ctx, cfg, accounts.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
	}
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			applied, err := db.Migrate(ctx, "test")
			if err != nil {
				t.Errorf("migration %d: %v", i, err)
			}
			mu.Lock()
			total += len(applied)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if total != accounts.SchemaVersion() {
		t.Errorf("%d steps applied in all, want each of the %d once", total, accounts.SchemaVersion())
	}
	if err := dbs[0].CheckSchema(ctx); err != nil {
		t.Error(err)
	}
	// One audit line a step, not one a run.
	audit, err := dbs[0].Audit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var migrates int
	for _, a := range audit {
		if a.Action == "migrate" {
			migrates++
		}
	}
	if migrates != accounts.SchemaVersion() {
		t.Errorf("%d migrate audit lines, want %d", migrates, accounts.SchemaVersion())
	}
}
