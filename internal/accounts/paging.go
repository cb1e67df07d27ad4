package accounts

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// MaxPage bounds how many rows one page of a listing holds.
const MaxPage = 500

// AccountPage lists at most limit accounts by e-mail, those after the
// address after ("" from the start), whose address contains q ("" for
// all), with their channels. more says whether rows follow the last one.
func (db *DB) AccountPage(ctx context.Context, q, after string, limit int) (page []Account, more bool, err error) {
	limit = min(max(limit, 1), MaxPage)
	pattern := "%" + likeEscaper.Replace(strings.ToLower(q)) + "%"
	err = db.read(ctx, func(t tx) error {
		var err error
		page, err = listAccounts(ctx, t, `WHERE a.email > ? AND a.email LIKE ? ESCAPE '\' ORDER BY a.email LIMIT ?`, after, pattern, limit+1)
		if len(page) > limit {
			page, more = page[:limit], true
		}
		return err
	})
	return page, more, err
}

// likeEscaper escapes the wildcards of a LIKE pattern (ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// AuditPage returns at most limit rows of the admin audit, oldest first,
// those after the row numbered after (0 from the start), each with its
// number (the cursor of the next page). more says whether rows follow.
func (db *DB) AuditPage(ctx context.Context, after int64, limit int) (page []AuditEntry, ids []int64, more bool, err error) {
	limit = min(max(limit, 1), MaxPage)
	err = db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, "SELECT id, at, actor, action, account, detail FROM admin_audit WHERE id > ? ORDER BY id LIMIT ?", after, limit+1)
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e AuditEntry
			var id, at int64
			if err := rows.Scan(&id, &at, &e.Actor, &e.Action, &e.Account, &e.Detail); err != nil {
				return fmt.Errorf("accounts: %w", err)
			}
			e.At = time.Unix(at, 0).UTC()
			page, ids = append(page, e), append(ids, id)
		}
		return rows.Err()
	})
	if len(page) > limit {
		page, ids, more = page[:limit], ids[:limit], true
	}
	return page, ids, more, err
}
