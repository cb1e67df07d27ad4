package accounts

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Defaults and bounds of the optional keys.
const (
	DefaultRevocationPoll = 500 * time.Millisecond
	DefaultLastUsedFlush  = 10 * time.Second
	minRevocationPoll     = 50 * time.Millisecond
	// maxRevocationPoll keeps the promised staleness of 1 s: a replica
	// that has not read the counter for two intervals stops serving
	// cached answers.
	maxRevocationPoll = 500 * time.Millisecond
	maxDSNFileBytes   = 64 << 10
)

// Config is the `licenses.sql` section of the token service configuration.
type Config struct {
	// Driver is sqlite or postgres.
	Driver string `yaml:"driver"`
	// DSN is a file path (or file: URI) for sqlite, a postgres:// URL or
	// key=value string for postgres.
	DSN string `yaml:"dsn"`
	// DSNFile holds the DSN instead (a mounted secret: the postgres URL
	// carries the password). Surrounding white space is ignored.
	DSNFile string `yaml:"dsn_file"`
	// RevocationPoll is how often each replica reads the change counter:
	// the bound on how long a revoked token or disabled account is still
	// served from the cache.
	RevocationPoll time.Duration `yaml:"revocation_poll"`
	// LastUsedFlush is how often recorded token use is written.
	LastUsedFlush time.Duration `yaml:"last_used_flush"`
}

// SetDefaults fills in the optional keys left empty.
func (c *Config) SetDefaults() {
	if c.RevocationPoll == 0 {
		c.RevocationPoll = DefaultRevocationPoll
	}
	if c.LastUsedFlush == 0 {
		c.LastUsedFlush = DefaultLastUsedFlush
	}
}

// Problems lists what is wrong with c, each prefixed with where (e.g.
// "licenses.sql"). It reads no files.
func (c *Config) Problems(where string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+"."+format, args...)) }
	switch c.Driver {
	case DriverSQLite, DriverPostgres:
	case "":
		add("driver: required (sqlite or postgres)")
	default:
		add("driver: %q is not sqlite or postgres", c.Driver)
	}
	if (c.DSN == "") == (c.DSNFile == "") {
		add("dsn: set exactly one of dsn and dsn_file")
	}
	if c.RevocationPoll < minRevocationPoll || c.RevocationPoll > maxRevocationPoll {
		add("revocation_poll: %v is outside [%v, %v]", c.RevocationPoll, minRevocationPoll, maxRevocationPoll)
	}
	if c.LastUsedFlush < time.Second {
		add("last_used_flush: %v is shorter than 1s", c.LastUsedFlush)
	}
	return errs
}

// dsn returns the configured DSN, read from DSNFile if that is set.
func (c *Config) dsn() (string, error) {
	if c.DSNFile == "" {
		return c.DSN, nil
	}
	fi, err := os.Stat(c.DSNFile)
	if err != nil {
		return "", err
	}
	if fi.Size() > maxDSNFileBytes {
		return "", fmt.Errorf("%s: larger than %d bytes", c.DSNFile, maxDSNFileBytes)
	}
	b, err := os.ReadFile(c.DSNFile)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: empty", c.DSNFile)
	}
	return s, nil
}

// errNoConfig is returned by Open for a nil Config.
var errNoConfig = errors.New("accounts: no licenses.sql configuration")
