package filebackend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/license"
)

const (
	// DefaultPollInterval is how often Backend.Run stats the file.
	DefaultPollInterval = 2 * time.Second
	// maxFileBytes is far above 100k accounts; it only stops a wrong path
	// (a log file, /dev/zero) from being slurped.
	maxFileBytes = 64 << 20
)

// Options configures a Backend. The zero value is usable.
type Options struct {
	// Clock decides expiry and Loaded times; default time.Now.
	Clock func() time.Time
	// Logger receives reload results; default slog.Default().
	Logger *slog.Logger
	// PollInterval is how often Run stats the file; default 2s.
	PollInterval time.Duration
}

// Backend serves licences from a YAML file of token hashes:
//
//	accounts:
//	  - username: alice@example.com
//	    token_sha256: "<hex SHA-256 of the API token, see license.HashToken>"
//	    channels: [stable, beta]
//	    expires: 2027-12-31T00:00:00Z   # optional
//
// Run picks up edits without a restart. An edit that does not load keeps
// the last good list, so a typo cannot lock every customer out. For the same
// reason a Backend is never unavailable once loaded, and it is no Prober:
// there is nothing for readiness to wait for.
type Backend struct {
	path     string
	clock    func() time.Time
	log      *slog.Logger
	interval time.Duration

	state   atomic.Pointer[fileState]
	running atomic.Bool

	// Poll bookkeeping: written by the constructor, then only by Run.
	seen     os.FileInfo // what the last read saw; nil if the file was missing
	badHash  [sha256.Size]byte
	statFail bool
}

var (
	_ license.Backend       = (*Backend)(nil)
	_ license.AccountFinder = (*Backend)(nil)
)

type fileState struct {
	// byToken finds an account by the SHA-256 of its API token, the one
	// key every backend looks up by. Looking up a hash, not comparing the
	// token, leaks nothing through timing: nobody can steer which hash
	// their guess has.
	byToken map[[sha256.Size]byte]fileAccount
	// users holds the usernames, lower case, for HasAccount.
	users  map[string]bool
	hash   [sha256.Size]byte // of the file content, to skip no-op rewrites
	loaded time.Time
}

type fileAccount struct {
	username  string
	tokenHash [sha256.Size]byte
	channels  []string
	expires   time.Time
}

// New loads path once. A file that does not load is an error here,
// unlike during Run, because there is no last good list to fall back to.
func New(path string, opts Options) (*Backend, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollInterval < 0 {
		return nil, fmt.Errorf("license: negative poll interval %v", opts.PollInterval)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	f := &Backend{
		path:     path,
		clock:    opts.Clock,
		log:      opts.Logger.With(slog.String("path", path)),
		interval: opts.PollInterval,
	}
	st, fi, err := f.read()
	if err != nil {
		return nil, fmt.Errorf("license: loading %s: %w", path, err)
	}
	f.seen = fi
	f.state.Store(st)
	return f, nil
}

// Loaded returns when the current account list was loaded; for readiness
// checks and "config reloaded" metrics.
func (f *Backend) Loaded() time.Time {
	return f.state.Load().loaded
}

// Lookup implements license.Backend. License.Account is the username of the file, so
// the Cache refuses any other (compared case-insensitively). An unknown
// token is wrong_token (the Cache makes it unknown_account when the
// username is not in the file either), a licence past its expires expired.
func (f *Backend) Lookup(_ context.Context, token string) (license.License, error) {
	if !license.PlausibleToken(token) {
		return license.License{}, license.BadCredentials(license.ReasonMalformed)
	}
	acct, known := f.state.Load().byToken[sha256.Sum256([]byte(token))]
	if !known {
		return license.License{}, license.BadCredentials(license.ReasonWrongToken)
	}
	if !acct.expires.IsZero() && !f.clock().Before(acct.expires) {
		return license.License{}, license.BadCredentials(license.ReasonExpired)
	}
	return license.License{
		Account:   acct.username,
		Channels:  append([]string(nil), acct.channels...),
		ExpiresAt: acct.expires,
	}, nil
}

// HasAccount implements AccountFinder: whether the file lists username
// (compared case-insensitively).
func (f *Backend) HasAccount(_ context.Context, username string) (bool, error) {
	return f.state.Load().users[strings.ToLower(username)], nil
}

// Run polls the file until ctx is done and then returns nil. It starts no
// goroutines of its own. Only one Run may be active at a time.
//
// Polling rather than inotify: no watcher module is vendored, a stat every
// few seconds is cheap, and it copes with editors and Kubernetes ConfigMaps
// that replace the file by rename, which per-file watches miss.
func (f *Backend) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("license: filebackend.Backend.Run is already running")
	}
	defer f.running.Store(false)

	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f.poll()
		}
	}
}

// poll rereads the file only when stat says it changed. The comparison
// includes file identity because a rename-into-place can keep size and, on
// coarse filesystems, mtime.
func (f *Backend) poll() {
	fi, err := os.Stat(f.path)
	if err != nil {
		if !f.statFail {
			f.log.Warn("license file unreadable; keeping last good account list", slog.Any("error", err))
			f.statFail = true
		}
		f.seen = nil
		return
	}
	f.statFail = false
	if f.seen != nil && os.SameFile(f.seen, fi) && fi.ModTime().Equal(f.seen.ModTime()) && fi.Size() == f.seen.Size() {
		return
	}

	st, readInfo, err := f.read()
	if readInfo != nil {
		f.seen = readInfo
	}
	if err != nil {
		var he *contentError
		if errors.As(err, &he) {
			if he.hash == f.badHash {
				return // same broken content, already reported
			}
			f.badHash = he.hash
		}
		f.log.Error("license file rejected; keeping last good account list", slog.Any("error", err))
		return
	}
	f.badHash = [sha256.Size]byte{}
	if st.hash == f.state.Load().hash {
		return // touched, or a broken edit reverted: nothing changed
	}
	f.state.Store(st)
	f.log.Info("license file reloaded", slog.Int("accounts", len(st.byToken)))
}

// contentError is a parse failure tagged with the content hash, so a broken
// file is logged once rather than on every change of its mtime alone.
type contentError struct {
	hash [sha256.Size]byte
	err  error
}

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

// read loads the file. It stats the open descriptor, so the returned info
// describes the bytes actually read even if the path is swapped meanwhile.
func (f *Backend) read() (*fileState, os.FileInfo, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, fi, err
	}
	if len(data) > maxFileBytes {
		return nil, fi, fmt.Errorf("file exceeds %d bytes", maxFileBytes)
	}
	hash := sha256.Sum256(data)
	accounts, err := parseAccounts(data)
	if err != nil {
		return nil, fi, &contentError{hash: hash, err: err}
	}
	byToken := make(map[[sha256.Size]byte]fileAccount, len(accounts))
	users := make(map[string]bool, len(accounts))
	for key, a := range accounts {
		byToken[a.tokenHash] = a
		users[key] = true
	}
	return &fileState{byToken: byToken, users: users, hash: hash, loaded: f.clock()}, fi, nil
}

type accountsFile struct {
	Accounts []accountEntry `yaml:"accounts"`
}

type accountEntry struct {
	Username    string    `yaml:"username"`
	TokenSHA256 string    `yaml:"token_sha256"`
	Channels    []string  `yaml:"channels"`
	Expires     time.Time `yaml:"expires"`
}

// parseAccounts is strict on purpose: a misspelt field or a duplicate user
// is far more likely a mistake than intent, and rejecting it keeps the last
// good list in force. Errors never quote token hashes.
func parseAccounts(data []byte) (map[string]fileAccount, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		// Usually a save caught half-way (truncate, then write).
		return nil, errors.New("file is empty")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc accountsFile
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("file has no YAML document")
		}
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("file has more than one YAML document")
	}
	if doc.Accounts == nil {
		// Catches a file whose top-level key is missing or misspelt but
		// otherwise empty; an intentionally empty list is "accounts: []".
		return nil, errors.New(`missing "accounts" list`)
	}

	out := make(map[string]fileAccount, len(doc.Accounts))
	tokens := make(map[[sha256.Size]byte]string, len(doc.Accounts)) // → where
	for i, e := range doc.Accounts {
		where := fmt.Sprintf("account %d", i+1)
		if e.Username == "" {
			return nil, fmt.Errorf("%s: username is empty", where)
		}
		where = fmt.Sprintf("account %d (%s)", i+1, e.Username)
		if strings.TrimSpace(e.Username) != e.Username {
			return nil, fmt.Errorf("%s: username has surrounding spaces", where)
		}
		key := strings.ToLower(e.Username)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s: duplicate username (usernames are case-insensitive)", where)
		}
		raw, err := hex.DecodeString(e.TokenSHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("%s: token_sha256 must be %d hex digits", where, 2*sha256.Size)
		}
		for _, ch := range e.Channels {
			if strings.TrimSpace(ch) == "" || strings.TrimSpace(ch) != ch {
				return nil, fmt.Errorf("%s: channel names must be non-empty without surrounding spaces", where)
			}
		}
		a := fileAccount{
			username: e.Username,
			channels: license.NormalizeChannels(e.Channels),
			expires:  e.Expires,
		}
		copy(a.tokenHash[:], raw)
		if other, dup := tokens[a.tokenHash]; dup {
			// Look-ups go by token: a shared one would name two accounts.
			return nil, fmt.Errorf("%s: token_sha256 is the same as that of %s (each account needs its own API token)", where, other)
		}
		tokens[a.tokenHash] = where
		out[key] = a
	}
	return out, nil
}
