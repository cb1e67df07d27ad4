package license

import (
	"context"
	"errors"
)

// Reason says why a login was refused, for the operator: the token
// service logs it and counts it. A client never sees it: every refusal
// gets the same answer, so that nobody learns which e-mail addresses have
// accounts.
type Reason string

// Reasons of a refused login. The backends and the Cache give the first
// five; the token service decides the last two itself, before any look-up.
const (
	// ReasonUnknownAccount: no account has the username given (or, from a
	// backend that cannot tell, the token is good but names another
	// owner: most often the e-mail address was mistyped).
	ReasonUnknownAccount Reason = "unknown_account"
	// ReasonWrongToken: the API token is not one of the account's (unknown,
	// revoked, or another account's), or the backend cannot tell the
	// account. A backend that returns the plain ErrBadCredentials is taken
	// to mean this.
	ReasonWrongToken Reason = "wrong_token"
	// ReasonDisabled: the account exists but is switched off (the SQL
	// backend's disabled state; a licence API's 403).
	ReasonDisabled Reason = "disabled"
	// ReasonExpired: the licence (or the refresh token) is past its expiry.
	ReasonExpired Reason = "expired"
	// ReasonUnavailable: the backend gave no trustworthy answer
	// (ErrUnavailable); the client is answered 503, not 401.
	ReasonUnavailable Reason = "backend_unavailable"
	// ReasonRateLimited: too many failed logins; the backend was not asked.
	ReasonRateLimited Reason = "rate_limited"
	// ReasonMalformed: no usable credentials (no Basic credentials, an empty
	// or oversized username or token, control characters in the token).
	ReasonMalformed Reason = "malformed"
)

// Reasons lists every Reason, so that metrics can show each from the start.
func Reasons() []Reason {
	return []Reason{ReasonUnknownAccount, ReasonWrongToken, ReasonDisabled, ReasonExpired,
		ReasonUnavailable, ReasonRateLimited, ReasonMalformed}
}

// CredentialsError is ErrBadCredentials with the reason: errors.Is(err,
// ErrBadCredentials) holds for it, so callers that only tell refusals from
// outages need not know it exists.
type CredentialsError struct {
	Reason Reason
}

func (e *CredentialsError) Error() string {
	return ErrBadCredentials.Error() + " (" + string(e.Reason) + ")"
}

// Is makes errors.Is(err, ErrBadCredentials) hold.
func (e *CredentialsError) Is(target error) bool { return target == ErrBadCredentials }

// One error per reason, shared: a refusal allocates nothing, and a cached
// refusal is the very error the backend gave.
var credentialsErrors = func() map[Reason]*CredentialsError {
	m := make(map[Reason]*CredentialsError)
	for _, r := range Reasons() {
		m[r] = &CredentialsError{Reason: r}
	}
	return m
}()

// BadCredentials returns the refusal for reason r.
func BadCredentials(r Reason) error {
	if e, ok := credentialsErrors[r]; ok {
		return e
	}
	return &CredentialsError{Reason: r}
}

// ReasonOf is why err refused a login: "" for nil, the reason of a
// CredentialsError, ReasonWrongToken for a plain ErrBadCredentials (a
// backend that does not say), ReasonUnavailable for anything else (which
// the Cache answers as ErrUnavailable: fail closed).
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*CredentialsError](err); ok {
		return e.Reason
	}
	if errors.Is(err, ErrBadCredentials) {
		return ReasonWrongToken
	}
	return ReasonUnavailable
}

// AccountFinder is implemented by a Backend that can tell whether an
// account exists. Look-ups go by token alone, so a backend cannot know
// whether a refused token came with the username of a real account: the
// Cache asks HasAccount for that, only for a refused login (never for one
// that succeeds), so that the log says unknown_account for a mistyped
// e-mail and wrong_token for an account's wrong token. The answer is not
// cached: it costs the backend one look-up (a map read, one indexed query)
// per refused login, which the rate limiter bounds.
type AccountFinder interface {
	// HasAccount reports whether username (compared case-insensitively)
	// names an account, in whatever state.
	HasAccount(ctx context.Context, username string) (bool, error)
}
