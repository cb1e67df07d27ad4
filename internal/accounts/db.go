package accounts

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded schema step, NNNN_name.sql.
type migration struct {
	version int
	name    string
	script  string
}

// migrations are the embedded steps in order; the last one's version is
// the schema version this binary works with.
var migrations = mustLoadMigrations()

func mustLoadMigrations() []migration {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	var out []migration
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(out)+1 {
			panic(fmt.Sprintf("accounts: migration %s: want %04d_name.sql", e.Name(), len(out)+1))
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			panic(err)
		}
		out = append(out, migration{version: v, name: name, script: string(b)})
	}
	return out
}

// SchemaVersion is the schema version this binary works with.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// DB is an open account database.
type DB struct {
	db    *sql.DB
	d     dialect
	clock func() time.Time
}

// Options are an Open's injected dependencies; the zero value is usable.
type Options struct {
	// Clock stamps created, revoked and audit times and decides expiry;
	// default time.Now.
	Clock func() time.Time
}

// Open connects to the database cfg names and checks that it answers. It
// does not look at the schema: see CheckSchema and Migrate.
func Open(ctx context.Context, cfg *Config, opts Options) (*DB, error) {
	if cfg == nil {
		return nil, errNoConfig
	}
	d, ok := dialects[cfg.Driver]
	if !ok {
		return nil, fmt.Errorf("accounts: unknown driver %q", cfg.Driver)
	}
	dsn, err := cfg.dsn()
	if err != nil {
		return nil, fmt.Errorf("accounts: dsn_file: %w", err)
	}
	if dsn == "" {
		return nil, errors.New("accounts: empty dsn")
	}
	if cfg.Driver == DriverSQLite {
		dsn = sqliteDSN(dsn)
		if err := createPrivate(sqlitePath(dsn)); err != nil {
			return nil, fmt.Errorf("accounts: creating the sqlite database: %w", err)
		}
	}
	db, err := sql.Open(d.sqlDriver, dsn)
	if err != nil {
		// Driver errors may quote the DSN, which can hold a password.
		return nil, fmt.Errorf("accounts: %s: bad dsn", cfg.Driver)
	}
	// Connections are not held forever, so that a database restarted or
	// failed over is reconnected to without a restart of ours.
	db.SetConnMaxLifetime(5 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	db.SetMaxIdleConns(8)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("accounts: connecting to the %s database: %w", cfg.Driver, err)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &DB{db: db, d: d, clock: opts.Clock}, nil
}

// Close closes the connections.
func (db *DB) Close() error { return db.db.Close() }

// Ping checks that the database answers; for readiness probes.
func (db *DB) Ping(ctx context.Context) error { return db.db.PingContext(ctx) }

// SchemaError says why the schema cannot be used, in words for the
// operator.
type SchemaError struct {
	// Have is the database's schema version (0: none); Want this binary's.
	Have, Want int
}

func (e *SchemaError) Error() string {
	switch {
	case e.Have == 0:
		return "accounts: the database has no accounts schema: run `tokenserver accounts migrate -config FILE` first"
	case e.Have > e.Want:
		return fmt.Sprintf("accounts: the database schema is version %d, newer than this tokenserver knows (%d): upgrade the tokenserver", e.Have, e.Want)
	default:
		return fmt.Sprintf("accounts: the database schema is version %d, older than this tokenserver needs (%d): run `tokenserver accounts migrate -config FILE`", e.Have, e.Want)
	}
}

// Version returns the schema version of the database, 0 for none.
func (db *DB) Version(ctx context.Context) (int, error) { return db.version(ctx, db.db) }

// querier is what version reads through: the pool, a connection or a
// transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) version(ctx context.Context, q querier) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, db.d.q(db.d.tableExists), "schema_migrations").Scan(&n); err != nil {
		return 0, fmt.Errorf("accounts: reading the schema version: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("accounts: reading the schema version: %w", err)
	}
	return int(v.Int64), nil
}

// CheckSchema returns a *SchemaError unless the database is at exactly the
// version this binary knows: a service never runs on a schema it was not
// written for.
func (db *DB) CheckSchema(ctx context.Context) error {
	v, err := db.Version(ctx)
	if err != nil {
		return err
	}
	if v != SchemaVersion() {
		return &SchemaError{Have: v, Want: SchemaVersion()}
	}
	return nil
}

// Migrate brings the schema up to SchemaVersion and returns the versions it
// applied (none when it was current).
func (db *DB) Migrate(ctx context.Context, actor string) ([]int, error) {
	return db.MigrateTo(ctx, actor, SchemaVersion())
}

// MigrateTo applies the migrations up to version target, each in a
// transaction of its own. A database newer than target is an error, not a
// downgrade.
//
// Runs at the same time (two replicas' migration Jobs, a Job and an
// operator) are safe: each step is applied under the database's lock and
// only when the version read under that lock says it is missing, so the
// later runs wait and then find nothing (or less) to do. PostgreSQL's lock
// is an advisory lock held for the whole run on one connection, which also
// covers creating schema_migrations (concurrent CREATE TABLE IF NOT EXISTS
// fails there); SQLite's is the write lock of each step's transaction,
// BEGIN IMMEDIATE (sqliteDSN's _txlock), taken before the version is read.
func (db *DB) MigrateTo(ctx context.Context, actor string, target int) (applied []int, err error) {
	if target < 1 || target > SchemaVersion() {
		return nil, fmt.Errorf("accounts: no schema version %d (this tokenserver knows 1 to %d)", target, SchemaVersion())
	}
	// One connection: a PostgreSQL advisory lock belongs to its session.
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer conn.Close()
	if db.d.lockMigrations != "" {
		if _, err := conn.ExecContext(ctx, db.d.lockMigrations, migrateLockKey); err != nil {
			return nil, fmt.Errorf("accounts: waiting for the migration lock: %w", err)
		}
		defer func() {
			// Not ctx: a cancelled run still lets the next one in.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(uctx, db.d.unlockMigrations, migrateLockKey); uerr != nil {
				// The session would keep the lock in the pool: close it.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
				err = errors.Join(err, fmt.Errorf("accounts: releasing the migration lock: %w", uerr))
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)`); err != nil {
		return nil, fmt.Errorf("accounts: creating schema_migrations: %w", err)
	}
	have, err := db.version(ctx, conn)
	if err != nil {
		return nil, err
	}
	if have > SchemaVersion() {
		return nil, &SchemaError{Have: have, Want: SchemaVersion()}
	}
	for _, m := range migrations[min(have, target):target] {
		done, err := db.apply(ctx, conn, m, actor)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// migrateLockKey is the PostgreSQL advisory lock of MigrateTo, a constant
// of its own ("rg-migr" in ASCII) so that it meets no other application's
// lock in the same database.
const migrateLockKey int64 = 0x72672d6d696772

// apply applies m unless the database, read under the transaction's lock,
// already has it (another run did), and says whether it did.
func (db *DB) apply(ctx context.Context, conn *sql.Conn, m migration, actor string) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("accounts: migration %d: %w", m.version, err)
	}
	defer tx.Rollback()
	have, err := db.version(ctx, tx)
	if err != nil {
		return false, err
	}
	if have >= m.version {
		return false, nil
	}
	for _, stmt := range statements(db.d.schema(m.script)) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, fmt.Errorf("accounts: migration %04d_%s: %w", m.version, m.name, err)
		}
	}
	now := db.clock().Unix()
	if _, err := tx.ExecContext(ctx, db.d.q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, now); err != nil {
		return false, fmt.Errorf("accounts: recording migration %d: %w", m.version, err)
	}
	if _, err := tx.ExecContext(ctx, db.d.q(insertAudit), now, actor, "migrate", "", fmt.Sprintf("schema version %d (%s)", m.version, m.name)); err != nil {
		return false, fmt.Errorf("accounts: migration %d: audit: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("accounts: migration %d: %w", m.version, err)
	}
	return true, nil
}

// statements splits a migration script at the semicolons that end a line,
// dropping comment lines: the drivers differ on several statements in one
// Exec.
func statements(script string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(script) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return slices.Clip(out)
}

const insertAudit = "INSERT INTO admin_audit (at, actor, action, account, detail) VALUES (?, ?, ?, ?, ?)"

// tx is a transaction that speaks the dialect.
type tx struct {
	*sql.Tx
	d dialect
}

func (t tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.ExecContext(ctx, t.d.q(query), args...)
}

func (t tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.QueryRowContext(ctx, t.d.q(query), args...)
}

func (t tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(ctx, t.d.q(query), args...)
}

// change runs one admin action: fn's writes, an audit row of what fn
// returns, and a bump of the change counter that replicas poll, all in one
// transaction.
func (db *DB) change(ctx context.Context, actor, action, account string, fn func(tx) (string, error)) error {
	if strings.TrimSpace(actor) == "" {
		return invalidf("the actor (who makes the change) is empty")
	}
	sqlTx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	t := tx{sqlTx, db.d}
	defer sqlTx.Rollback()
	detail, err := fn(t)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, insertAudit, db.clock().Unix(), actor, action, account, detail); err != nil {
		return fmt.Errorf("accounts: audit: %w", err)
	}
	if _, err := t.exec(ctx, "UPDATE revision SET value = value + 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("accounts: change counter: %w", err)
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	return nil
}

// read runs fn in a read-only view.
func (db *DB) read(ctx context.Context, fn func(tx) error) error {
	sqlTx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	defer sqlTx.Rollback()
	return fn(tx{sqlTx, db.d})
}
