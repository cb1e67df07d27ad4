package httpbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/license"
)

const (
	// DefaultTimeout bounds one call to the licence API.
	DefaultTimeout = 5 * time.Second
	// maxResponseBytes keeps a broken or hostile upstream from making us
	// buffer without bound; a licence list is a few kilobytes.
	maxResponseBytes = 1 << 20
)

// Options configures a Backend.
type Options struct {
	// URL of the licence endpoint, e.g. https://api.kloudless.com/v1/meta/licenses/.
	URL string
	// ChannelsPath locates the channel names in the JSON answer; see
	// DefaultChannelsPath (the default) for the grammar.
	ChannelsPath string
	// UsernamePath, if set, locates the customer's e-mail address in the
	// answer (same grammar); the Cache then refuses other usernames. Unset,
	// any username is taken with a valid token.
	UsernamePath string
	// Timeout bounds each call, including reading the body; default 5s.
	Timeout time.Duration
	// Client is used for requests; default is a client with Timeout.
	Client *http.Client
}

// Backend asks the vendor's licence API with the customer's API token.
//
// The API only takes the token. Without UsernamePath it cannot confirm that
// the e-mail address belongs to it, and License.Account is left empty; with
// it, Account is the address the answer names.
type Backend struct {
	url      string
	path     channelPath
	userPath channelPath // nil without UsernamePath
	timeout  time.Duration
	client   *http.Client
	// ownClient: Open built client, so Close releases its connections.
	ownClient bool
}

var (
	_ license.Backend = (*Backend)(nil)
	_ license.Prober  = (*Backend)(nil)
	_ license.Closer  = (*Backend)(nil)
)

// New validates cfg, including ChannelsPath, so that a bad
// configuration fails at start-up rather than on the first login.
func New(cfg Options) (*Backend, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("license: bad URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("license: URL %q must be absolute http(s)", cfg.URL)
	}
	if u.User != nil {
		// The URL ends up in error messages and logs.
		return nil, errors.New("license: URL must not contain credentials")
	}
	if cfg.ChannelsPath == "" {
		cfg.ChannelsPath = DefaultChannelsPath
	}
	p, err := parseChannelPath(cfg.ChannelsPath)
	if err != nil {
		return nil, fmt.Errorf("license: channels path: %w", err)
	}
	var userPath channelPath
	if cfg.UsernamePath != "" {
		if userPath, err = parseChannelPath(cfg.UsernamePath); err != nil {
			return nil, fmt.Errorf("license: username path: %w", err)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("license: negative timeout %v", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Backend{url: u.String(), path: p, userPath: userPath, timeout: cfg.Timeout, client: cfg.Client}, nil
}

// Lookup implements license.Backend. The API's refusals map to the closest
// reason: 401 (it does not take the token) to wrong_token, 403 (it knows
// the token and refuses it) to disabled. Any other status, 404 included
// (most likely a wrong licenses.http.url), and no answer are license.ErrUnavailable,
// as the probe takes them: a misconfigured URL must not look like every
// customer typing a wrong token. A token whose owner (UsernamePath) is not
// the username given is refused by the Cache.
func (b *Backend) Lookup(ctx context.Context, token string) (license.License, error) {
	if !license.PlausibleToken(token) {
		return license.License{}, license.BadCredentials(license.ReasonMalformed)
	}
	// An injected client may have no timeout of its own; the context
	// deadline also covers reading the body.
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()

	resp, err := b.get(ctx, token)
	if err != nil {
		return license.License{}, err
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		drain(resp.Body)
		return license.License{}, license.BadCredentials(license.ReasonWrongToken)
	case http.StatusForbidden:
		drain(resp.Body)
		return license.License{}, license.BadCredentials(license.ReasonDisabled)
	default:
		drain(resp.Body)
		return license.License{}, fmt.Errorf("%w: licence API answered %s", license.ErrUnavailable, resp.Status)
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return license.License{}, fmt.Errorf("%w: reading licence API answer: %w", license.ErrUnavailable, err)
	}
	if len(body) > maxResponseBytes {
		return license.License{}, fmt.Errorf("%w: licence API answer exceeds %d bytes", license.ErrUnavailable, maxResponseBytes)
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return license.License{}, fmt.Errorf("%w: licence API answer is not JSON: %w", license.ErrUnavailable, err)
	}
	channels, err := b.path.extract(doc)
	if err != nil {
		return license.License{}, fmt.Errorf("%w: licence API answer: %w", license.ErrUnavailable, err)
	}
	account, err := b.account(doc)
	if err != nil {
		return license.License{}, fmt.Errorf("%w: licence API answer: %w", license.ErrUnavailable, err)
	}
	return license.License{Account: account, Channels: license.NormalizeChannels(channels)}, nil
}

// Probe implements Prober: a GET of the licence URL without a token. The
// API is usable when it answers the way it answers a look-up (200, or 401 /
// 403 for the missing token); any other status, or no answer within the
// timeout, is license.ErrUnavailable, as a look-up would be.
func (b *Backend) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	resp, err := b.get(ctx, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	drain(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusUnauthorized, http.StatusForbidden:
		return nil
	}
	return fmt.Errorf("%w: licence API answered %s", license.ErrUnavailable, resp.Status)
}

// get sends the licence request, with the token when there is one. Errors
// wrap license.ErrUnavailable.
func (b *Backend) get(ctx context.Context, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", license.ErrUnavailable, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The licence API rejects Docker's Accept header (see the seed article).
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "registry-gateway")
	resp, err := b.client.Do(req)
	if err != nil {
		// *url.Error names method, URL and cause; the token is only in a
		// header, which it never prints.
		return nil, fmt.Errorf("%w: %w", license.ErrUnavailable, err)
	}
	return resp, nil
}

// account is the one e-mail address at the username path ("" without one).
// An answer that names none, or several, is the API changing shape (or a
// wrong username_path): answered as unavailable, so that the operator sees
// it in the log, rather than as a wrong password nobody would look into.
func (b *Backend) account(doc any) (string, error) {
	if b.userPath == nil {
		return "", nil
	}
	names, err := b.userPath.extract(doc)
	if err != nil {
		return "", err
	}
	account := ""
	for _, n := range names {
		switch {
		case n == "":
		case account == "":
			account = n
		case !strings.EqualFold(account, n):
			return "", fmt.Errorf("several e-mail addresses at %q", b.userPath.String())
		}
	}
	if account == "" {
		return "", fmt.Errorf("no e-mail address at %q", b.userPath.String())
	}
	return account, nil
}

// drain lets the connection be reused when the body is small, without
// reading an unbounded error page.
func drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10))
}
