package ecr

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/acme/registry-gateway/pkg/upstream"
	"github.com/acme/registry-gateway/pkg/upstream/presign"
)

// Config is upstream.ecr: the registry's region and, optionally, its
// account.
type Config struct {
	Region     string `yaml:"region"`
	RegistryID string `yaml:"registry_id"`
	// Client tunes the SDK client (tests point it at a fake); not part of
	// the file.
	Client ClientOptions `yaml:"-"`
}

// NewConfig is an empty section to decode upstream.ecr into.
func NewConfig() upstream.Config { return new(Config) }

var registryIDRe = regexp.MustCompile(`^[0-9]{12}$`)

// Validate implements upstream.Config.
func (c *Config) Validate() []error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, errors.New("region: required"))
	}
	if c.RegistryID != "" && !registryIDRe.MatchString(c.RegistryID) {
		errs = append(errs, fmt.Errorf("registry_id: %q is not a 12-digit AWS account ID", c.RegistryID))
	}
	return errs
}

// CheckFiles implements upstream.Config: the section names no file (AWS
// credentials come from the SDK's chain at start).
func (c *Config) CheckFiles(context.Context) error { return nil }

// Provider builds the SDK client (see NewSDKFetcher); it contacts nothing.
func (c *Config) Provider(ctx context.Context, env upstream.Env) (upstream.Provider, error) {
	f, err := NewSDKFetcher(ctx, c.Region, c.RegistryID, c.Client)
	if err != nil {
		return nil, err
	}
	return NewProvider(f, env.MaxRepositories), nil
}

// Provider is ECR as an upstream: credentials from GetAuthorizationToken,
// repositories from DescribeRepositories, and blob redirects to presigned
// S3 URLs, whose expiry the URL itself says.
type Provider struct {
	*SDKFetcher
	lister *Lister // nil when the client cannot list
}

var (
	_ upstream.Provider         = (*Provider)(nil)
	_ upstream.RepositoryLister = (*Provider)(nil)
)

// NewProvider is f as a provider, whose lister collects at most max names
// (0: no bound).
func NewProvider(f *SDKFetcher, max int) *Provider {
	p := &Provider{SDKFetcher: f}
	if l := f.Lister(); l != nil {
		l.Max = max
		p.lister = l
	}
	return p
}

// Repositories implements upstream.RepositoryLister with DescribeRepositories.
func (p *Provider) Repositories(ctx context.Context) ([]string, error) {
	if p.lister == nil {
		return nil, errors.New("ecr: the client cannot list repositories")
	}
	return p.lister.Repositories(ctx)
}

// RedirectExpiry implements upstream.Provider: ECR redirects blob GETs to
// SigV4-presigned S3 URLs.
func (p *Provider) RedirectExpiry(u *url.URL) (time.Time, bool) { return presign.URLExpiry(u) }
