package accounts

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The export document: every table of the store that a restore needs, as
// one JSON object with a top-level key per table. Rows keep their ids,
// times (whole seconds, UTC) and nulls (an absent key), so that a restore
// is exact and tokens keep the ids `accounts show` and `token revoke` use.
//
// The version rule: ExportVersion changes only when the meaning of a key
// that exists changes, and a tokenserver reads the versions it knows and
// refuses newer ones. A new table is a new top-level key under the same
// version; a tokenserver that does not know a key refuses the whole
// document, because restoring without it would drop that table's rows
// silently. So a document is imported by the tokenserver that wrote it or
// a newer one, which reads a section added since as empty (laterSections).
const (
	// ExportFormat names the document, so that no other JSON is taken
	// for one.
	ExportFormat = "registry-gateway-accounts"
	// ExportVersion is the document version this binary writes and reads.
	ExportVersion = 1
	// MaxExportBytes bounds the document an import reads.
	MaxExportBytes = 256 << 20
)

// Export is the export document.
type Export struct {
	Format        string           `json:"format"`
	Version       int              `json:"version"`
	ExportedAt    time.Time        `json:"exported_at"`
	Accounts      []ExportAccount  `json:"accounts"`
	APITokens     []ExportToken    `json:"api_tokens"`
	Channels      []ExportChannel  `json:"channels"`
	ChannelGrants []ExportGrant    `json:"channel_grants"`
	AdminAudit    []ExportAudit    `json:"admin_audit"`
	AdminKeys     []ExportAdminKey `json:"admin_keys"`
}

// exportSections are the top-level keys holding tables, in the order of
// the document.
var exportSections = []string{"accounts", "api_tokens", "channels", "channel_grants", "admin_audit", "admin_keys"}

// laterSections are the sections added to version 1 after its first
// release: a document written before one of them lacks it, its table did
// not exist (or was not exported) then, and it is read as empty, so that
// a newer tokenserver imports what an older one wrote.
var laterSections = []string{"admin_keys"}

// ExportAccount is a row of accounts.
type ExportAccount struct {
	ID      int64     `json:"id"`
	Email   string    `json:"email"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	// SelfServiceTokens: absent in exports made before the console, and
	// false.
	SelfServiceTokens bool `json:"self_service_tokens,omitempty"`
}

// ExportToken is a row of api_tokens: the token's SHA-256, never the
// token.
type ExportToken struct {
	ID          int64     `json:"id"`
	AccountID   int64     `json:"account_id"`
	TokenSHA256 string    `json:"token_sha256"`
	Prefix      string    `json:"prefix"`
	Created     time.Time `json:"created"`
	LastUsed    time.Time `json:"last_used,omitzero"`
	Revoked     time.Time `json:"revoked,omitzero"`
	// Name is absent for a token without one.
	Name string `json:"name,omitempty"`
}

// ExportChannel is a row of channels.
type ExportChannel struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
}

// ExportGrant is a row of channel_grants.
type ExportGrant struct {
	AccountID int64     `json:"account_id"`
	Channel   string    `json:"channel"`
	Granted   time.Time `json:"granted"`
	Expires   time.Time `json:"expires,omitzero"`
}

// ExportAudit is a row of admin_audit.
type ExportAudit struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Account string    `json:"account"`
	Detail  string    `json:"detail"`
}

// ExportAdminKey is a row of admin_keys: the key's SHA-256, never the
// key.
type ExportAdminKey struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	KeySHA256 string    `json:"key_sha256"`
	Prefix    string    `json:"prefix"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires,omitzero"`
	Revoked   time.Time `json:"revoked,omitzero"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

// ExportCounts counts the rows of a document, for what the commands say.
type ExportCounts struct {
	Accounts     int `json:"accounts"`
	Tokens       int `json:"api_tokens"`
	Channels     int `json:"channels"`
	Grants       int `json:"channel_grants"`
	AuditEntries int `json:"admin_audit"`
	AdminKeys    int `json:"admin_keys"`
}

// Counts returns the rows of e per table.
func (e *Export) Counts() ExportCounts {
	return ExportCounts{len(e.Accounts), len(e.APITokens), len(e.Channels), len(e.ChannelGrants), len(e.AdminAudit), len(e.AdminKeys)}
}

func (c ExportCounts) String() string {
	return fmt.Sprintf("%d accounts, %d API token hashes, %d channels, %d grants, %d audit entries, %d admin key hashes",
		c.Accounts, c.Tokens, c.Channels, c.Grants, c.AuditEntries, c.AdminKeys)
}

// Encode writes e as indented JSON.
func (e *Export) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(e)
}

// Export reads every table a restore needs in one consistent view.
func (db *DB) Export(ctx context.Context) (*Export, error) {
	var opts *sql.TxOptions
	if db.d.dollar {
		// PostgreSQL's default isolation would let each query see a
		// different moment; SQLite's transaction is one snapshot anyway.
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	sqlTx, err := db.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("accounts: export: %w", err)
	}
	defer sqlTx.Rollback()
	doc, err := exportTx(ctx, tx{sqlTx, db.d})
	if err != nil {
		return nil, err
	}
	doc.ExportedAt = db.clock().UTC().Truncate(time.Second)
	return doc, nil
}

func exportTx(ctx context.Context, t tx) (*Export, error) {
	doc := &Export{
		Format: ExportFormat, Version: ExportVersion,
		Accounts: []ExportAccount{}, APITokens: []ExportToken{}, Channels: []ExportChannel{},
		ChannelGrants: []ExportGrant{}, AdminAudit: []ExportAudit{}, AdminKeys: []ExportAdminKey{},
	}
	err := scanRows(ctx, t, "SELECT id, email, state, created_at, expires_at, self_service_tokens FROM accounts ORDER BY id", func(rows *sql.Rows) error {
		var a ExportAccount
		var created int64
		var expires sql.NullInt64
		if err := rows.Scan(&a.ID, &a.Email, &a.State, &created, &expires, &a.SelfServiceTokens); err != nil {
			return err
		}
		a.Created, a.Expires = time.Unix(created, 0).UTC(), unix(expires)
		doc.Accounts = append(doc.Accounts, a)
		return nil
	})
	if err == nil {
		err = scanRows(ctx, t, "SELECT id, account_id, token_sha256, prefix, created_at, last_used_at, revoked_at, name FROM api_tokens ORDER BY id", func(rows *sql.Rows) error {
			var k ExportToken
			var created int64
			var used, revoked sql.NullInt64
			if err := rows.Scan(&k.ID, &k.AccountID, &k.TokenSHA256, &k.Prefix, &created, &used, &revoked, &k.Name); err != nil {
				return err
			}
			k.Created, k.LastUsed, k.Revoked = time.Unix(created, 0).UTC(), unix(used), unix(revoked)
			doc.APITokens = append(doc.APITokens, k)
			return nil
		})
	}
	if err == nil {
		err = scanRows(ctx, t, "SELECT name, description, created_at FROM channels ORDER BY name", func(rows *sql.Rows) error {
			var c ExportChannel
			var created int64
			if err := rows.Scan(&c.Name, &c.Description, &created); err != nil {
				return err
			}
			c.Created = time.Unix(created, 0).UTC()
			doc.Channels = append(doc.Channels, c)
			return nil
		})
	}
	if err == nil {
		err = scanRows(ctx, t, "SELECT account_id, channel, granted_at, expires_at FROM channel_grants ORDER BY account_id, channel", func(rows *sql.Rows) error {
			var g ExportGrant
			var granted int64
			var expires sql.NullInt64
			if err := rows.Scan(&g.AccountID, &g.Channel, &granted, &expires); err != nil {
				return err
			}
			g.Granted, g.Expires = time.Unix(granted, 0).UTC(), unix(expires)
			doc.ChannelGrants = append(doc.ChannelGrants, g)
			return nil
		})
	}
	if err == nil {
		err = scanRows(ctx, t, "SELECT id, at, actor, action, account, detail FROM admin_audit ORDER BY id", func(rows *sql.Rows) error {
			var a ExportAudit
			var at int64
			if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Action, &a.Account, &a.Detail); err != nil {
				return err
			}
			a.At = time.Unix(at, 0).UTC()
			doc.AdminAudit = append(doc.AdminAudit, a)
			return nil
		})
	}
	if err == nil {
		err = scanRows(ctx, t, "SELECT id, name, scope, key_sha256, prefix, created_at, expires_at, revoked_at, last_used_at FROM admin_keys ORDER BY id", func(rows *sql.Rows) error {
			var k ExportAdminKey
			var created int64
			var expires, revoked, used sql.NullInt64
			if err := rows.Scan(&k.ID, &k.Name, &k.Scope, &k.KeySHA256, &k.Prefix, &created, &expires, &revoked, &used); err != nil {
				return err
			}
			k.Created, k.Expires, k.Revoked, k.LastUsed = time.Unix(created, 0).UTC(), unix(expires), unix(revoked), unix(used)
			doc.AdminKeys = append(doc.AdminKeys, k)
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: export: %w", err)
	}
	return doc, nil
}

func scanRows(ctx context.Context, t tx, query string, row func(*sql.Rows) error) error {
	rows, err := t.query(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ReadExport reads an export document of at most limit bytes and checks
// it: its format and version, every section present (but those of
// laterSections, read as empty when absent) and none unknown, no unknown
// field, and rows that are consistent (unique ids and names,
// grants and tokens of accounts in it, grants of channels in it, whole
// seconds). Every problem is an ErrInvalid naming where it is.
func ReadExport(r io.Reader, limit int64) (*Export, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, invalidf("the document is larger than %d bytes", limit)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, invalidf("not an accounts export (a JSON object): %v", err)
	}
	var format string
	if err := json.Unmarshal(top["format"], &format); err != nil || format != ExportFormat {
		return nil, invalidf("not an accounts export: \"format\" is not %q (write one with `tokenserver accounts export`)", ExportFormat)
	}
	var version int
	if err := json.Unmarshal(top["version"], &version); err != nil || version < 1 {
		return nil, invalidf("\"version\" is missing or not a positive integer")
	}
	if version > ExportVersion {
		return nil, invalidf("the document is version %d, newer than this tokenserver reads (%d): import it with the tokenserver that wrote it, or a newer one", version, ExportVersion)
	}
	known := append([]string{"format", "version", "exported_at"}, exportSections...)
	var unknown, missing []string
	for k := range top {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	for _, k := range known {
		if _, ok := top[k]; !ok && !slices.Contains(laterSections, k) {
			missing = append(missing, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, invalidf("unknown section %s: a version %d document read by this tokenserver holds %s; a table added to the store is a new section of the same version, and a tokenserver that does not know one refuses the document rather than drop its rows: import it with the tokenserver that wrote it, or a newer one",
			quoteAll(unknown), ExportVersion, strings.Join(exportSections, ", "))
	}
	if len(missing) > 0 {
		return nil, invalidf("missing %s: an export holds every section, empty ones as []", quoteAll(missing))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc Export
	if err := dec.Decode(&doc); err != nil {
		return nil, invalidf("reading the document: %v", err)
	}
	if doc.AdminKeys == nil {
		doc.AdminKeys = []ExportAdminKey{}
	}
	if err := doc.check(); err != nil {
		return nil, err
	}
	return &doc, nil
}

func quoteAll(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, ", ")
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// maxExportProblems bounds the problems one import lists.
const maxExportProblems = 20

// check lists what is wrong with the rows of e.
func (e *Export) check() error {
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < maxExportProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	when := func(where string, t time.Time, required bool) {
		switch {
		case t.IsZero() && required:
			add("%s: missing", where)
		case t.Nanosecond() != 0:
			add("%s: %s is not a whole second", where, t.Format(time.RFC3339Nano))
		}
	}
	accounts := map[int64]bool{}
	emails := map[string]bool{}
	for i, a := range e.Accounts {
		at := fmt.Sprintf("accounts[%d]", i)
		if a.ID < 1 || accounts[a.ID] {
			add("%s.id: %d is not a positive id of its own", at, a.ID)
		}
		accounts[a.ID] = true
		if norm, err := NormalizeEmail(a.Email); err != nil || norm != a.Email || emails[a.Email] {
			add("%s.email: %q is not a lower-case e-mail address of its own", at, a.Email)
		}
		emails[a.Email] = true
		if a.State != StateActive && a.State != StateDisabled {
			add("%s.state: %q is not %s or %s", at, a.State, StateActive, StateDisabled)
		}
		when(at+".created", a.Created, true)
		when(at+".expires", a.Expires, false)
	}
	tokens := map[int64]bool{}
	hashes := map[string]bool{}
	for i, k := range e.APITokens {
		at := fmt.Sprintf("api_tokens[%d]", i)
		if k.ID < 1 || tokens[k.ID] {
			add("%s.id: %d is not a positive id of its own", at, k.ID)
		}
		tokens[k.ID] = true
		if !accounts[k.AccountID] {
			add("%s.account_id: no account %d in the document", at, k.AccountID)
		}
		// The hash is not quoted: it is as secret as the database.
		if !sha256Hex.MatchString(k.TokenSHA256) || hashes[k.TokenSHA256] {
			add("%s.token_sha256: not a lower-case hex SHA-256 of its own", at)
		}
		hashes[k.TokenSHA256] = true
		if k.Name != "" && CheckTokenName(k.Name) != nil {
			add("%s.name: %q is not a token name", at, k.Name)
		}
		when(at+".created", k.Created, true)
		when(at+".last_used", k.LastUsed, false)
		when(at+".revoked", k.Revoked, false)
	}
	channels := map[string]bool{}
	for i, c := range e.Channels {
		at := fmt.Sprintf("channels[%d]", i)
		if norm, err := NormalizeChannels([]string{c.Name}); err != nil || len(norm) != 1 || norm[0] != c.Name || channels[c.Name] {
			add("%s.name: %q is not a channel name of its own", at, c.Name)
		}
		channels[c.Name] = true
		if d, err := NormalizeDescription(c.Description); err != nil || d != c.Description {
			add("%s.description: not one trimmed line of text", at)
		}
		when(at+".created", c.Created, true)
	}
	type grant struct {
		id int64
		ch string
	}
	grants := map[grant]bool{}
	for i, g := range e.ChannelGrants {
		at := fmt.Sprintf("channel_grants[%d]", i)
		if !accounts[g.AccountID] {
			add("%s.account_id: no account %d in the document", at, g.AccountID)
		}
		if !channels[g.Channel] {
			add("%s.channel: no channel %q in the document", at, g.Channel)
		}
		if grants[grant{g.AccountID, g.Channel}] {
			add("%s: account %d holds %q twice", at, g.AccountID, g.Channel)
		}
		grants[grant{g.AccountID, g.Channel}] = true
		when(at+".granted", g.Granted, true)
		when(at+".expires", g.Expires, false)
	}
	audit := map[int64]bool{}
	for i, a := range e.AdminAudit {
		at := fmt.Sprintf("admin_audit[%d]", i)
		if a.ID < 1 || audit[a.ID] {
			add("%s.id: %d is not a positive id of its own", at, a.ID)
		}
		audit[a.ID] = true
		if a.Actor == "" || a.Action == "" {
			add("%s: actor and action are required", at)
		}
		when(at+".at", a.At, true)
	}
	keys := map[int64]bool{}
	keyNames := map[string]bool{}
	keyHashes := map[string]bool{}
	for i, k := range e.AdminKeys {
		at := fmt.Sprintf("admin_keys[%d]", i)
		if k.ID < 1 || keys[k.ID] {
			add("%s.id: %d is not a positive id of its own", at, k.ID)
		}
		keys[k.ID] = true
		if !adminKeyNameRe.MatchString(k.Name) || keyNames[k.Name] {
			add("%s.name: %q is not an admin key name of its own", at, k.Name)
		}
		keyNames[k.Name] = true
		if k.Scope != ScopeRead && k.Scope != ScopeWrite {
			add("%s.scope: %q is not %s or %s", at, k.Scope, ScopeRead, ScopeWrite)
		}
		// The hash is not quoted: it is as secret as the database.
		if !sha256Hex.MatchString(k.KeySHA256) || keyHashes[k.KeySHA256] {
			add("%s.key_sha256: not a lower-case hex SHA-256 of its own", at)
		}
		keyHashes[k.KeySHA256] = true
		when(at+".created", k.Created, true)
		when(at+".expires", k.Expires, false)
		when(at+".revoked", k.Revoked, false)
		when(at+".last_used", k.LastUsed, false)
	}
	if len(problems) > 0 {
		return invalidf("nothing imported:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	// Unchanged: the database held exactly the document already.
	Unchanged bool
	Counts    ExportCounts
}

// Restore writes the document doc into an empty database (no accounts,
// tokens, channels, grants or admin keys, and no audit but of its migrations): every
// row as it was, ids included, in one transaction. The audit becomes the
// document's, which holds the history of the exported database (its
// migrations too); the restore adds no row of its own, so that an export
// of the restored database equals doc. A database that holds doc already
// is left alone (Unchanged); any other is refused with ErrConflict and
// nothing changed.
func (db *DB) Restore(ctx context.Context, doc *Export) (RestoreResult, error) {
	res := RestoreResult{Counts: doc.Counts()}
	if doc.Format != ExportFormat || doc.Version != ExportVersion {
		return res, invalidf("not a version %d accounts export", ExportVersion)
	}
	if err := doc.check(); err != nil {
		return res, err
	}
	sqlTx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("accounts: import: %w", err)
	}
	defer sqlTx.Rollback()
	t := tx{sqlTx, db.d}
	if db.d.dollar {
		// Two imports at once, or an admin change during one, wait
		// rather than interleave.
		if _, err := t.exec(ctx, "LOCK TABLE accounts, api_tokens, channels, channel_grants, admin_audit, admin_keys IN EXCLUSIVE MODE"); err != nil {
			return res, fmt.Errorf("accounts: import: %w", err)
		}
	}
	have, err := exportTx(ctx, t)
	if err != nil {
		return res, err
	}
	if same, err := sameRows(have, doc); err != nil {
		return res, err
	} else if same {
		res.Unchanged = true
		return res, nil
	}
	var migrations int
	for _, a := range have.AdminAudit {
		if a.Action == "migrate" {
			migrations++
		}
	}
	if c := have.Counts(); c.Accounts+c.Tokens+c.Channels+c.Grants+c.AdminKeys > 0 || c.AuditEntries > migrations {
		return res, conflictf("the database is not empty and differs from the document (it holds %d accounts, %d channels, %d admin keys, %d audit entries besides its migrations): nothing changed; import into a new database made with `tokenserver accounts migrate`",
			c.Accounts, c.Channels, c.AdminKeys, c.AuditEntries-migrations)
	}
	if err := restoreTx(ctx, t, doc); err != nil {
		return res, err
	}
	if err := sqlTx.Commit(); err != nil {
		return res, fmt.Errorf("accounts: import: %w", err)
	}
	return res, nil
}

// sameRows reports whether a and b hold the same rows, whenever exported.
func sameRows(a, b *Export) (bool, error) {
	ac, bc := *a, *b
	ac.ExportedAt, bc.ExportedAt = time.Time{}, time.Time{}
	aj, err := json.Marshal(ac)
	if err != nil {
		return false, err
	}
	bj, err := json.Marshal(bc)
	if err != nil {
		return false, err
	}
	return bytes.Equal(aj, bj), nil
}

func restoreTx(ctx context.Context, t tx, doc *Export) error {
	fail := func(what string, err error) error { return fmt.Errorf("accounts: import: %s: %w", what, err) }
	if _, err := t.exec(ctx, "DELETE FROM admin_audit"); err != nil {
		return fail("admin_audit", err)
	}
	for _, c := range doc.Channels {
		if _, err := t.exec(ctx, "INSERT INTO channels (name, description, created_at) VALUES (?, ?, ?)", c.Name, c.Description, c.Created.Unix()); err != nil {
			return fail("channel "+c.Name, err)
		}
	}
	for _, a := range doc.Accounts {
		if _, err := t.exec(ctx, "INSERT INTO accounts (id, email, state, created_at, expires_at, self_service_tokens) VALUES (?, ?, ?, ?, ?, ?)",
			a.ID, a.Email, a.State, a.Created.Unix(), nullUnix(a.Expires), a.SelfServiceTokens); err != nil {
			return fail("account "+a.Email, err)
		}
	}
	for _, g := range doc.ChannelGrants {
		if _, err := t.exec(ctx, "INSERT INTO channel_grants (account_id, channel, granted_at, expires_at) VALUES (?, ?, ?, ?)",
			g.AccountID, g.Channel, g.Granted.Unix(), nullUnix(g.Expires)); err != nil {
			return fail("grant "+g.Channel, err)
		}
	}
	for _, k := range doc.APITokens {
		if _, err := t.exec(ctx, "INSERT INTO api_tokens (id, account_id, token_sha256, prefix, created_at, last_used_at, revoked_at, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			k.ID, k.AccountID, k.TokenSHA256, k.Prefix, k.Created.Unix(), nullUnix(k.LastUsed), nullUnix(k.Revoked), k.Name); err != nil {
			// The driver's message could quote the hash.
			return fail(fmt.Sprintf("token %d", k.ID), errors.New("refused by the database"))
		}
	}
	for _, a := range doc.AdminAudit {
		if _, err := t.exec(ctx, "INSERT INTO admin_audit (id, at, actor, action, account, detail) VALUES (?, ?, ?, ?, ?, ?)",
			a.ID, a.At.Unix(), a.Actor, a.Action, a.Account, a.Detail); err != nil {
			return fail(fmt.Sprintf("audit entry %d", a.ID), err)
		}
	}
	for _, k := range doc.AdminKeys {
		if _, err := t.exec(ctx, "INSERT INTO admin_keys (id, name, scope, key_sha256, prefix, created_at, expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			k.ID, k.Name, k.Scope, k.KeySHA256, k.Prefix, k.Created.Unix(), nullUnix(k.Expires), nullUnix(k.Revoked), nullUnix(k.LastUsed)); err != nil {
			// The driver's message could quote the hash.
			return fail(fmt.Sprintf("admin key %d", k.ID), errors.New("refused by the database"))
		}
	}
	if t.d.dollar {
		// Explicit ids do not move PostgreSQL's identity sequences: the
		// next account, token, audit row or admin key would collide.
		// (SQLite's AUTOINCREMENT follows the largest id by itself.)
		for _, table := range []string{"accounts", "api_tokens", "admin_audit", "admin_keys"} {
			if _, err := t.exec(ctx, fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%[1]s', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM %[1]s", table)); err != nil {
				return fail(table+" id sequence", err)
			}
		}
	}
	// Replicas already running on the empty database drop what they
	// cached.
	if _, err := t.exec(ctx, "UPDATE revision SET value = value + 1 WHERE id = 1"); err != nil {
		return fail("change counter", err)
	}
	return nil
}
