package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrUnknownKey is returned by a KeySource that holds no key with the
// token's kid.
var ErrUnknownKey = errors.New("unknown signing key")

// KeySource finds the public key a token names in its kid header.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error)
}

var (
	_ KeySource = StaticKeys(nil)
	_ KeySource = (*RemoteJWKS)(nil)
	_ KeySource = KeySources(nil)
)

// StaticKeys is a fixed set of trusted keys by kid.
type StaticKeys map[string]crypto.PublicKey

// PublicKey implements KeySource.
func (s StaticKeys) PublicKey(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// LoadPublicKeys reads PEM files of public keys or certificates, each key
// filed under its thumbprint.
func LoadPublicKeys(paths ...string) (StaticKeys, error) {
	keys := StaticKeys{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		pubs, err := ParsePublicKeysPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, pub := range pubs {
			kid, err := Thumbprint(pub)
			if err != nil {
				return nil, err
			}
			keys[kid] = pub
		}
	}
	return keys, nil
}

// KeySources asks each source in turn; the first that knows the kid wins.
type KeySources []KeySource

// PublicKey implements KeySource.
func (ks KeySources) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	var errs []error
	for _, s := range ks {
		k, err := s.PublicKey(ctx, kid)
		if err == nil {
			return k, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, ErrUnknownKey
	}
	return nil, errors.Join(errs...)
}

// maxJWKSSize bounds what is read from a JWKS URL.
const maxJWKSSize = 1 << 20

// RemoteJWKS is the key set published by the token service. It is fetched
// once at start; a kid it does not know triggers a refetch (the token
// service has rotated its key), at most once per MinRefetch so that tokens
// with made-up kids cannot turn the gateway into a load generator.
type RemoteJWKS struct {
	url        string
	client     *http.Client
	minRefetch time.Duration
	now        func() time.Time

	group singleflight.Group

	mu        sync.RWMutex
	keys      map[string]crypto.PublicKey
	lastFetch time.Time
}

// RemoteJWKSOptions tunes a RemoteJWKS; zero values take the defaults.
type RemoteJWKSOptions struct {
	Client     *http.Client     // default: 10 s timeout
	MinRefetch time.Duration    // default: 5 s
	Clock      func() time.Time // default: time.Now
}

// NewRemoteJWKS returns a key source for url; call Refresh to fetch it once
// before serving.
func NewRemoteJWKS(url string, opts RemoteJWKSOptions) *RemoteJWKS {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.MinRefetch <= 0 {
		opts.MinRefetch = 5 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &RemoteJWKS{url: url, client: opts.Client, minRefetch: opts.MinRefetch, now: opts.Clock}
}

// PublicKey implements KeySource.
func (r *RemoteJWKS) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	r.mu.RLock()
	k, ok := r.keys[kid]
	recent := r.now().Sub(r.lastFetch) < r.minRefetch
	r.mu.RUnlock()
	if ok {
		return k, nil
	}
	if recent {
		return nil, ErrUnknownKey
	}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	r.mu.RLock()
	k, ok = r.keys[kid]
	r.mu.RUnlock()
	if !ok {
		return nil, ErrUnknownKey
	}
	return k, nil
}

// Refresh fetches the key set now; concurrent calls share one fetch. A
// failed fetch keeps the keys held before.
func (r *RemoteJWKS) Refresh(ctx context.Context) error {
	_, err, _ := r.group.Do("", func() (any, error) {
		keys, err := r.fetch(context.WithoutCancel(ctx))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.lastFetch = r.now()
		if err != nil {
			return nil, err
		}
		r.keys = keys
		return nil, nil
	})
	return err
}

// Len is the number of keys held, for readiness checks.
func (r *RemoteJWKS) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.keys)
}

func (r *RemoteJWKS) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: %s answered %s", r.url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	if len(data) > maxJWKSSize {
		return nil, errors.New("fetch JWKS: document too large")
	}
	return ParseJWKS(data)
}
