package pgserver

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
)

// A server starts, makes databases, and leaves nothing behind.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	s, err := Start(ctx)
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := s.NewDatabase(ctx, "t")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	var one int
	err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	db.Close()
	if err != nil || one != 1 {
		t.Errorf("SELECT 1 = %d, %v", one, err)
	}
	if s.PID() <= 0 {
		t.Errorf("PID %d", s.PID())
	}
	dir := s.dir
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", dir, err)
	}
}
