// Package accounts keeps customer accounts in SQL (SQLite for a single
// instance, PostgreSQL for several replicas): accounts with a state and an
// expiry, API tokens stored only as SHA-256 hashes, a channel catalogue
// and grants of its channels (an unknown channel is refused with the
// nearest known name), and an append-only audit of every admin change.
//
// [DB] is what the admin CLI (`tokenserver accounts …`) drives: versioned
// schema migrations embedded in the binary ([DB.Migrate], [DB.CheckSchema])
// and one method per admin action. [Backend] serves the token service: it
// implements license.Backend with one indexed query per look-up, and
// license.Versioned with a change counter that every admin action bumps and
// that each replica polls, so that the licence cache drops its answers
// within the poll interval after a revocation on any replica. It records
// token use in memory and writes last_used in batches.
//
// The usage store (usage.go) keeps the gateway's events — pulls, checks and
// refused attempts — with daily counts: [DB.RecordUsage] stores a batch
// and its counts in one transaction, [DB.PruneUsage] applies retention,
// [DB.Usage] is the query behind `tokenserver usage` and [DB.AccountUsage]
// the first and last pull of `accounts show`.
//
// [DB.Export] writes every table as one versioned JSON document and
// [DB.Restore] writes one back, exactly, into an empty database of either
// kind: backups that outlive the database engine, and the way from SQLite
// to PostgreSQL.
//
// The SQL is written once for both databases: the placeholders and the few
// type names that differ are translated in dialect.go, and nowhere else.
package accounts
