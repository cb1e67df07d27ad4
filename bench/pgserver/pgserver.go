// Package pgserver runs a PostgreSQL server for the benchmark: Debian's
// postgresql binaries, initdb into a temporary directory, the server on a
// free loopback port with durability off (the benchmark measures the
// product, not the disk), run as nobody when the harness runs as root
// (postgres refuses root), and stopped by its PID. It does what
// internal/testsupport/accountstest does for the tests, without a
// testing.TB, which a benchmark run has not.
package pgserver

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
	"syscall"
	"time"

	// The driver the account store uses for postgres.
	_ "github.com/jackc/pgx/v5/stdlib"
)

// ErrNotInstalled: the server binaries are not on this machine.
var ErrNotInstalled = errors.New("no PostgreSQL server binaries (postgres, initdb)")

// startWait bounds how long the server may take to accept connections.
const startWait = 30 * time.Second

// ids are the user and group the server runs as.
type ids struct{ uid, gid uint32 }

// Server is one running PostgreSQL server.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	n    int
}

// Find returns the directory holding postgres and initdb: Debian keeps
// them under /usr/lib/postgresql/<version>/bin, off PATH.
func Find() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(real), "postgres")); err == nil {
				return filepath.Dir(real), nil
			}
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", ErrNotInstalled
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// Start initialises a data directory under a new temporary directory and
// starts the server; Close stops it and removes the files.
func Start(ctx context.Context) (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	as, err := runAs()
	if err != nil {
		return nil, err
	}
	// Not under the harness's temporary directory when running as root:
	// the server's user must reach it.
	dir, err := os.MkdirTemp("", "bench-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	if as != nil {
		if err := os.Chown(dir, int(as.uid), int(as.gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = sysProcAttr(as, false)
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(s.port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	cmd.SysProcAttr = sysProcAttr(as, true)
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(startWait)
	for {
		err := s.ping(ctx)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log := s.Log()
			s.Close()
			return nil, fmt.Errorf("postgres did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) ping(ctx context.Context) error {
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// PID is the postmaster's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// DSN is the URL of database on the server.
func (s *Server) DSN(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", s.port, database)
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(ctx context.Context, prefix string) (string, error) {
	s.n++
	name := prefix + strconv.Itoa(s.n)
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.DSN(name), nil
}

// Log is the server's log, for error messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	return strings.TrimSpace(string(b))
}

// Close stops the server (fast shutdown), waits for it, at most 20 s
// before killing it, and removes its files.
func (s *Server) Close() {
	if s.cmd != nil {
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
	os.RemoveAll(s.dir)
}
