package accounts

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// AccountChange is what ChangeAccount changes; nil fields stay.
type AccountChange struct {
	// State is StateActive or StateDisabled.
	State *string
	// Expires is the new end of the licence; zero: never.
	Expires *time.Time
	// SelfServiceTokens lets the customer manage their own API tokens in
	// the console, or stops it.
	SelfServiceTokens *bool
	// Delete removes the account (the other fields are ignored).
	Delete bool
}

// ChangeAccount changes an account in one transaction after check, given
// the account as it is then (with its channels, tokens and grants),
// accepts it:
// the account's row is locked first, so that check sees what the change
// changes (an HTTP If-Match). Each change is its own audit row. It returns
// the account after the change.
func (db *DB) ChangeAccount(ctx context.Context, actor, email string, check func(Account, []Grant) error, c AccountChange) (Account, []Grant, error) {
	var actions []string
	switch {
	case c.Delete:
		actions = []string{"delete"}
	default:
		if c.State != nil {
			switch *c.State {
			case StateActive:
				actions = append(actions, "enable")
			case StateDisabled:
				actions = append(actions, "disable")
			default:
				return Account{}, nil, invalidf("state %q is not %s or %s", *c.State, StateActive, StateDisabled)
			}
		}
		if c.Expires != nil {
			if !c.Expires.IsZero() && !c.Expires.After(db.clock()) {
				return Account{}, nil, invalidf("expiry %s is in the past", c.Expires.UTC().Format(time.RFC3339))
			}
			actions = append(actions, "expire")
		}
		if c.SelfServiceTokens != nil {
			actions = append(actions, "self_service")
		}
	}
	if len(actions) == 0 {
		return Account{}, nil, invalidf("nothing to change")
	}
	var out Account
	var grants []Grant
	err := db.onAccount(ctx, actor, actions[0], email, func(t tx, a *Account) (string, error) {
		// A write that changes nothing takes the row's lock (both
		// databases), so that a concurrent change waits for this one.
		if _, err := t.exec(ctx, "UPDATE accounts SET state = state WHERE id = ?", a.id); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		cur, err := lookupAccount(ctx, t, a.Email)
		if err != nil {
			return "", err
		}
		if err := cur.loadChannels(ctx, t); err != nil {
			return "", err
		}
		if err := cur.loadTokens(ctx, t); err != nil {
			return "", err
		}
		if grants, err = loadGrants(ctx, t, cur.id); err != nil {
			return "", err
		}
		if err := check(cur, grants); err != nil {
			return "", err
		}
		if c.Delete {
			_, err := t.exec(ctx, "DELETE FROM accounts WHERE id = ?", cur.id)
			return "", err
		}
		details := map[string]string{}
		if c.State != nil {
			if _, err := t.exec(ctx, "UPDATE accounts SET state = ? WHERE id = ?", *c.State, cur.id); err != nil {
				return "", fmt.Errorf("accounts: %w", err)
			}
			cur.State = *c.State
		}
		if c.Expires != nil {
			if _, err := t.exec(ctx, "UPDATE accounts SET expires_at = ? WHERE id = ?", nullUnix(*c.Expires), cur.id); err != nil {
				return "", fmt.Errorf("accounts: %w", err)
			}
			cur.Expires = c.Expires.UTC().Truncate(time.Second)
			details["expire"] = "expires=" + expiryWords(*c.Expires)
		}
		if c.SelfServiceTokens != nil {
			if _, err := t.exec(ctx, "UPDATE accounts SET self_service_tokens = ? WHERE id = ?", *c.SelfServiceTokens, cur.id); err != nil {
				return "", fmt.Errorf("accounts: %w", err)
			}
			cur.SelfServiceTokens = *c.SelfServiceTokens
			details["self_service"] = "tokens=" + strconv.FormatBool(*c.SelfServiceTokens)
		}
		now := db.clock().Unix()
		for _, action := range actions[1:] {
			if _, err := t.exec(ctx, insertAudit, now, actor, action, cur.Email, details[action]); err != nil {
				return "", fmt.Errorf("accounts: audit: %w", err)
			}
		}
		out = cur
		return details[actions[0]], nil
	})
	return out, grants, err
}
