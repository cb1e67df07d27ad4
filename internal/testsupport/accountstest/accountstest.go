// Package accountstest gives tests real account databases: SQLite in a
// temporary directory, and a real PostgreSQL server (Debian's postgresql
// package) run by the test itself as an unprivileged user, in a temporary
// directory, on a free port, and stopped by PID.
//
// PostgreSQL tests skip with a hint when the server binaries are missing,
// unless CI or REQUIRE_POSTGRES=1 is set: then they fail. Where the server
// cannot be run the way this package runs it (on Windows; as root off Linux,
// where dropping to nobody is Linux-specific here), they skip saying so,
// unless REQUIRE_POSTGRES=1.
package accountstest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// SQLite returns the configuration of a fresh SQLite database in a
// temporary directory.
func SQLite(t testing.TB) *accounts.Config {
	t.Helper()
	cfg := &accounts.Config{Driver: accounts.DriverSQLite, DSN: filepath.Join(t.TempDir(), "accounts.db")}
	cfg.SetDefaults()
	return cfg
}

// Open opens cfg, migrates it to the current schema and closes it when
// the test ends.
func Open(t testing.TB, cfg *accounts.Config, opts accounts.Options) *accounts.DB {
	t.Helper()
	db, err := accounts.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	return db
}

// Drivers runs f once per driver, as subtests "sqlite" and "postgres",
// each with a fresh empty database.
func Drivers(t *testing.T, f func(t *testing.T, cfg *accounts.Config)) {
	t.Run(accounts.DriverSQLite, func(t *testing.T) { f(t, SQLite(t)) })
	t.Run(accounts.DriverPostgres, func(t *testing.T) { f(t, Shared(t).NewDatabase(t)) })
}

// Server is a PostgreSQL server run by a test.
type Server struct {
	bin  string // directory of postgres and initdb
	dir  string // data directory and socket directory live here
	port int
	as   *ids // nil: run as ourselves

	mu  sync.Mutex
	cmd *exec.Cmd
	n   int // databases created
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Shared returns the PostgreSQL server shared by the tests of the process,
// starting it on first use; Main stops it. Tests that stop the server
// themselves use Start instead.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		skipOrFail(t, sharedErr)
	}
	return shared
}

// Main runs the tests and then stops the shared server; call it from
// TestMain: os.Exit(accountstest.Main(m)).
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	return code
}

// Start starts a PostgreSQL server of the test's own, stopped when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(s.Close)
	return s
}

// ErrNoPostgres is StartServer's error when PostgreSQL is not installed.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries (postgres, initdb)")

// errUnsupported: this package cannot run the server on this system (see
// the package comment). CI runs Linux, so only REQUIRE_POSTGRES=1 makes it
// a failure.
var errUnsupported = errors.New("running a PostgreSQL test server is not supported")

// ids are the user and group the server runs as.
type ids struct{ uid, gid uint32 }

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	require := os.Getenv("REQUIRE_POSTGRES") == "1"
	switch {
	case errors.Is(err, ErrNoPostgres) && os.Getenv("CI") == "" && !require:
		t.Skipf("%v: apt-get install postgresql (CI and REQUIRE_POSTGRES=1 make this a failure)", err)
	case errors.Is(err, errUnsupported) && !require:
		t.Skipf("%v (REQUIRE_POSTGRES=1 makes this a failure)", err)
	}
	t.Fatal(err)
}

// findBin returns the directory holding postgres and initdb: Debian keeps
// them under /usr/lib/postgresql/<version>/bin, off PATH.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", ErrNoPostgres
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// StartServer starts a PostgreSQL server of its own (initdb in a temporary
// directory, a free loopback port, fsync off, as nobody when root), for
// callers outside a test: the benchmark. Close stops it and removes it.
func StartServer() (*Server, error) { return start() }

func start() (*Server, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are 0700 root, and postgres refuses to
	// run as root, so the server's user must reach this directory.
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		as, err := nobody()
		if err == nil {
			err = os.Chown(dir, int(as.uid), int(as.gid))
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.as = &as
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = s.sysProcAttr(false)
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Start (re)starts the server on its port; the first start picks a free
// one.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("accountstest: server running")
	}
	if s.port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		s.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	cmd.SysProcAttr = s.sysProcAttr(true)
	logf, err := os.Create(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", s.dsn("postgres"))
		if err == nil {
			err = db.PingContext(context.Background())
			db.Close()
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("postgres did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (fast shutdown: open connections are cut) and
// waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Close stops the server and removes its files.
func (s *Server) Close() {
	s.Stop()
	os.RemoveAll(s.dir)
}

func (s *Server) dsn(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", s.port, database)
}

// NewDatabase creates an empty database and returns its configuration.
func (s *Server) NewDatabase(t testing.TB) *accounts.Config {
	t.Helper()
	dsn, err := s.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &accounts.Config{Driver: accounts.DriverPostgres, DSN: dsn}
	cfg.SetDefaults()
	return cfg
}

// CreateDatabase creates an empty database and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.n++
	name := "t" + strconv.Itoa(s.n)
	s.mu.Unlock()
	db, err := sql.Open("pgx", s.dsn("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.dsn(name), nil
}

// Log returns the server's log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	return strings.TrimSpace(string(b))
}
