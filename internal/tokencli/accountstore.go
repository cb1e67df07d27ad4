package tokencli

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// accountStore is what the accounts commands that the admin API also
// serves need: the account database itself (localStore, with -config) or
// the admin API of a token service (remoteStore, with --server). Each
// command is written once against it, so that both ways print the same
// and exit the same. Errors carry the accounts error kinds
// (accounts.ErrNotFound, ErrConflict, ErrInvalid) that pick the exit code.
//
// actor is who the audit records: used by the local store only, since the
// admin API records the admin key's name.
type accountStore interface {
	Add(ctx context.Context, actor, email string, channels []string, expires time.Time, create bool) (accounts.Account, string, error)
	List(ctx context.Context) ([]accounts.Account, error)
	Show(ctx context.Context, email string) (accounts.Account, error)
	// AccountUsage is when the account first and last pulled and last
	// checked, from the usage store.
	AccountUsage(ctx context.Context, email string) (accounts.AccountUsage, error)
	Grant(ctx context.Context, actor, email string, channels []string, create bool) error
	Ungrant(ctx context.Context, actor, email string, channels []string) error
	SetExpiry(ctx context.Context, actor, email string, expires time.Time) error
	SetState(ctx context.Context, actor, email, state string) error
	Delete(ctx context.Context, actor, email string) error
	// AddToken makes another API token; name may be "" (the remote store
	// names it then, since the admin API wants a name).
	AddToken(ctx context.Context, actor, email, name string) (accounts.Token, string, error)
	RevokeToken(ctx context.Context, actor, email, ref string) (accounts.Token, error)
	RotateToken(ctx context.Context, actor, email, ref string) (old, created accounts.Token, token string, err error)
	Audit(ctx context.Context, email string) ([]accounts.AuditEntry, error)
	Channels(ctx context.Context) ([]accounts.Channel, error)
	AddChannel(ctx context.Context, actor, name, description string) (accounts.Channel, error)
	RemoveChannel(ctx context.Context, actor, name string, force bool) ([]string, error)
	// SetSelfServiceTokens lets the customer manage their own API tokens
	// in the console, or stops it.
	SetSelfServiceTokens(ctx context.Context, actor, email string, on bool) error
	// SignInLink makes a one-time sign-in link to the console and returns
	// its URL: under consoleURL, valid for ttl (the local store); the
	// remote store's server decides both (console.public_url,
	// console.sign_in_link_ttl).
	SignInLink(ctx context.Context, actor, email, consoleURL string, ttl time.Duration) (string, time.Time, error)
}

// localStore is the account database opened from -config.
type localStore struct{ *accounts.DB }

func (s localStore) Add(ctx context.Context, actor, email string, channels []string, expires time.Time, create bool) (accounts.Account, string, error) {
	return s.DB.Add(ctx, actor, email, channels, expires, createOption(create)...)
}

func (s localStore) Grant(ctx context.Context, actor, email string, channels []string, create bool) error {
	return s.DB.Grant(ctx, actor, email, channels, createOption(create)...)
}

func (s localStore) AddToken(ctx context.Context, actor, email, name string) (accounts.Token, string, error) {
	if name == "" {
		return s.DB.AddToken(ctx, actor, email)
	}
	tok, token, err := s.DB.AddNamedToken(ctx, actor, email, name)
	return tok.Token, token, err
}

func (s localStore) SignInLink(ctx context.Context, actor, email, consoleURL string, ttl time.Duration) (string, time.Time, error) {
	if consoleURL == "" {
		return "", time.Time{}, &accounts.Error{Kind: accounts.ErrInvalid, Msg: "--console-url is required with -config: the console's address, its console.public_url (https://console.example.com/console/)"}
	}
	secret, expires, err := s.DB.CreateSignInLink(ctx, actor, email, ttl)
	if err != nil {
		return "", time.Time{}, err
	}
	return strings.TrimSuffix(consoleURL, "/") + "/link?t=" + url.QueryEscape(secret), expires, nil
}

var _ accountStore = localStore{}
