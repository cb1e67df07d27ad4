// Package static is the upstream provider for any registry other than ECR:
// a username and a password read from a file (upstream.static in the
// gateway's configuration).
//
// The file is read on every fetch, so that replacing it rotates the
// password: the gateway's upstream.Source picks the new one up after the
// upstream's next 401. Its credentials never expire. Blob redirects are
// taken to be presigned storage URLs (distribution on S3 or behind
// CloudFront), whose validity presign reads.
package static

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/acme/registry-gateway/pkg/upstream"
	"github.com/acme/registry-gateway/pkg/upstream/presign"
)

// Config is upstream.static.
type Config struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// NewConfig is an empty section to decode upstream.static into.
func NewConfig() upstream.Config { return new(Config) }

// Validate implements upstream.Config.
func (c *Config) Validate() []error {
	var errs []error
	if c.Username == "" {
		errs = append(errs, errors.New("username: required"))
	}
	if c.PasswordFile == "" {
		errs = append(errs, errors.New("password_file: required"))
	}
	return errs
}

// CheckFiles reads the password file as the provider will (trailing
// newlines dropped, empty refused).
func (c *Config) CheckFiles(ctx context.Context) error {
	if _, err := (&Provider{Username: c.Username, PasswordFile: c.PasswordFile}).Fetch(ctx); err != nil {
		return fmt.Errorf("password_file: %w", err)
	}
	return nil
}

// Provider implements upstream.Config.
func (c *Config) Provider(_ context.Context, env upstream.Env) (upstream.Provider, error) {
	return &Provider{Username: c.Username, PasswordFile: c.PasswordFile, ProxyEndpoint: env.URL}, nil
}

// Provider reads the password from a file on each Fetch.
type Provider struct {
	Username      string
	PasswordFile  string
	ProxyEndpoint string
}

var _ upstream.Provider = (*Provider)(nil)

// Fetch reads the password file, dropping trailing newlines.
func (p *Provider) Fetch(context.Context) (upstream.Credential, error) {
	b, err := os.ReadFile(p.PasswordFile)
	if err != nil {
		return upstream.Credential{}, fmt.Errorf("static: read password file: %w", err)
	}
	pass := strings.TrimRight(string(b), "\r\n")
	if pass == "" {
		return upstream.Credential{}, fmt.Errorf("static: password file %s is empty", p.PasswordFile)
	}
	return upstream.Credential{Username: p.Username, Password: pass, ProxyEndpoint: p.ProxyEndpoint}, nil
}

// RedirectExpiry reads a presigned storage URL's expiry (see presign).
func (p *Provider) RedirectExpiry(u *url.URL) (time.Time, bool) { return presign.URLExpiry(u) }
