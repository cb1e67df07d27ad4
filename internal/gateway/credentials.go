package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/acme/registry-gateway/pkg/upstream"
)

// Credentials is the gateway's upstream credential: *upstream.Source in
// production, StaticCredential in tests.
type Credentials interface {
	// Credential returns the credential to use now.
	Credential(ctx context.Context) (upstream.Credential, error)
	// Invalidate reports that the upstream refused stale and returns its
	// replacement; concurrent callers share one refresh.
	Invalidate(ctx context.Context, stale upstream.Credential) (upstream.Credential, error)
}

// readiness is what Credentials may also offer for /readyz and metrics.
type readiness interface {
	Ready() bool
	ExpiresAt() time.Time
}

var (
	_ Credentials = (*upstream.Source)(nil)
	_ readiness   = (*upstream.Source)(nil)
	_ Credentials = StaticCredential{}
)

// StaticCredential never changes; Invalidate hands back the same one.
type StaticCredential upstream.Credential

// Credential implements Credentials.
func (s StaticCredential) Credential(context.Context) (upstream.Credential, error) {
	return upstream.Credential(s), nil
}

// Invalidate implements Credentials.
func (s StaticCredential) Invalidate(context.Context, upstream.Credential) (upstream.Credential, error) {
	return upstream.Credential(s), nil
}

// errNoCredential wraps a failure to obtain an upstream credential; the
// client gets a 503, the cause goes to the log only.
var errNoCredential = errors.New("no upstream credential")

// refreshHoldOff is how long after a refresh an upstream 401 is taken as
// the upstream's verdict on the credential rather than a sign that it went
// stale: ECR throttles GetAuthorizationToken (20/s), and a credential that
// was refused right after it was fetched is refused for a reason a fetch
// does not cure (permissions, a wrong registry).
const refreshHoldOff = 30 * time.Second

// authHeader caches the Authorization value of the current credential, so
// that the hot path does not base64-encode it for every request.
type authHeader struct {
	creds Credentials
	clock func() time.Time
	cur   atomic.Pointer[headerFor]
}

type headerFor struct {
	cred  upstream.Credential
	value []string // shared by every request's header map: never changed
	// refreshedAt is when an upstream 401 made the gateway ask for this
	// credential; zero for one it was simply handed.
	refreshedAt time.Time
}

// get returns the credential to use and its header value.
func (a *authHeader) get(ctx context.Context) (*headerFor, error) {
	c, err := a.creds.Credential(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCredential, err)
	}
	return a.remember(c), nil
}

// invalidate replaces stale and returns the new credential's header (the
// same credential when the source has no other), marked as refreshed now.
func (a *authHeader) invalidate(ctx context.Context, stale upstream.Credential) (*headerFor, error) {
	c, err := a.creds.Invalidate(ctx, stale)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCredential, err)
	}
	h := &headerFor{cred: c, value: []string{c.BasicAuth()}, refreshedAt: a.clock()}
	a.cur.Store(h)
	return h, nil
}

// heldOff reports whether h was refreshed less than refreshHoldOff ago.
func (a *authHeader) heldOff(h *headerFor) bool {
	return !h.refreshedAt.IsZero() && a.clock().Sub(h.refreshedAt) < refreshHoldOff
}

func (a *authHeader) remember(c upstream.Credential) *headerFor {
	if h := a.cur.Load(); h != nil && h.cred.Username == c.Username && h.cred.Password == c.Password {
		return h
	}
	h := &headerFor{cred: c, value: []string{c.BasicAuth()}}
	a.cur.Store(h)
	return h
}
