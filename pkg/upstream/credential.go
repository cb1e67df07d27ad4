package upstream

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"time"
)

// Credential is a username and password for the upstream registry.
// Its String, Format and LogValue methods leave the password out, so a
// Credential can be logged or wrapped into errors safely.
type Credential struct {
	Username string
	Password string `json:"-"`
	// ExpiresAt is when the upstream stops accepting the credential; the zero
	// time means never.
	ExpiresAt time.Time
	// ProxyEndpoint is the registry URL the credential is for, when the
	// fetcher knows it (ECR: "https://<account>.dkr.ecr.<region>.amazonaws.com").
	ProxyEndpoint string
}

// Fetcher obtains a new credential from wherever credentials come from.
type Fetcher interface {
	Fetch(ctx context.Context) (Credential, error)
}

// BasicAuth returns the value of an Authorization header carrying the credential.
func (c Credential) BasicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
}

// Expired reports whether the credential is no longer valid at now.
func (c Credential) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

func (c Credential) String() string {
	exp := "never"
	if !c.ExpiresAt.IsZero() {
		exp = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("upstream.Credential{user=%q password=%s expires=%s endpoint=%q}",
		c.Username, redacted(c.Password), exp, c.ProxyEndpoint)
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %d, ...) print String, since
// the default struct formatting would print the password.
func (c Credential) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprint(f, c.String())
}

// LogValue implements slog.LogValuer without the password.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user", c.Username),
		slog.String("password", redacted(c.Password)),
		slog.Time("expires_at", c.ExpiresAt),
		slog.String("endpoint", c.ProxyEndpoint),
	)
}

func redacted(p string) string {
	if p == "" {
		return "<empty>"
	}
	return "<redacted>"
}
