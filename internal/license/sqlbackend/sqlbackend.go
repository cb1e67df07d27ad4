// Package sqlbackend is the licence backend `sql`: the customer accounts
// of internal/accounts (the store `tokenserver accounts` administers),
// configured by the section licenses.sql.
package sqlbackend

import (
	"context"
	"log/slog"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
)

// openTimeout bounds connecting to the database and checking its schema
// at start.
const openTimeout = 15 * time.Second

// Config is the section licenses.sql: the account database.
type Config struct {
	accounts.Config `yaml:",inline"`
}

// Decode reads licenses.sql strictly.
func Decode(section *yaml.Node) (license.BackendConfig, error) {
	var c Config
	if err := license.DecodeSection(section, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Open implements license.BackendConfig: it connects to the account
// database and refuses a schema this binary was not written for (not
// migrated, older or newer).
func (c *Config) Open(ctx context.Context, env license.Env) (license.Backend, error) {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	db, err := accounts.Open(ctx, &c.Config, accounts.Options{Clock: env.Clock})
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return &Backend{
		Backend: db.NewBackend(accounts.BackendOptions{
			RevocationPoll: c.RevocationPoll, LastUsedFlush: c.LastUsedFlush, Logger: env.Logger,
		}),
		db:  db,
		log: env.Logger,
	}, nil
}

// Backend is the login side of the account database (accounts.Backend:
// look-ups, probe, change counter, Run) with the database it owns.
type Backend struct {
	*accounts.Backend
	db  *accounts.DB
	log *slog.Logger
}

var (
	_ license.Backend       = (*Backend)(nil)
	_ license.Versioned     = (*Backend)(nil)
	_ license.Prober        = (*Backend)(nil)
	_ license.AccountFinder = (*Backend)(nil)
	_ license.Runner        = (*Backend)(nil)
	_ license.Closer        = (*Backend)(nil)
)

// Close implements license.Closer: it closes the account database's
// connections.
func (b *Backend) Close() {
	if err := b.db.Close(); err != nil {
		b.log.Warn("closing the account database", slog.Any("error", err))
	}
}
