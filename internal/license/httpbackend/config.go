package httpbackend

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/license"
)

// Config is the section licenses.http: the vendor's licence API.
type Config struct {
	URL          string `yaml:"url"`
	ChannelsPath string `yaml:"channels_path"`
	// UsernamePath, if set, is where the answer names the customer's
	// e-mail address; other usernames are then refused.
	UsernamePath string        `yaml:"username_path"`
	Timeout      time.Duration `yaml:"timeout"`
}

// Decode reads licenses.http strictly.
func Decode(section *yaml.Node) (license.BackendConfig, error) {
	var c Config
	if err := license.DecodeSection(section, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// SetDefaults implements license.BackendConfig.
func (c *Config) SetDefaults() {
	if c.ChannelsPath == "" {
		c.ChannelsPath = DefaultChannelsPath
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Problems implements license.BackendConfig.
func (c *Config) Problems(where string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+"."+format, args...)) }
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("url: %q is not an absolute http(s) URL", c.URL)
	} else if u.User != nil {
		add("url: must not contain credentials")
	}
	if c.Timeout <= 0 {
		add("timeout: %v must be positive", c.Timeout)
	}
	if _, err := parseChannelPath(c.ChannelsPath); err != nil {
		add("channels_path: %v", err)
	}
	if c.UsernamePath != "" {
		if _, err := parseChannelPath(c.UsernamePath); err != nil {
			add("username_path: %v", err)
		}
	}
	return errs
}

// Open implements license.BackendConfig. Without env.HTTPClient the
// backend builds its own client and releases its connections on Close.
func (c *Config) Open(_ context.Context, env license.Env) (license.Backend, error) {
	client := env.HTTPClient
	if client == nil {
		client = newClient(c.Timeout)
	}
	b, err := New(Options{
		URL: c.URL, ChannelsPath: c.ChannelsPath, UsernamePath: c.UsernamePath,
		Timeout: c.Timeout, Client: client,
	})
	if err != nil {
		return nil, err
	}
	b.ownClient = env.HTTPClient == nil
	if c.UsernamePath == "" {
		// Valid, for an API that cannot name the owner, but then a
		// customer's token works with any e-mail address: say so at
		// every start rather than leave it to be found in the audit.
		env.Logger.Warn("licenses.http.username_path is not set: usernames are not checked, any username is taken with a valid API token and becomes the token's sub; set it to where the licence API names the customer's e-mail (e.g. user.email)",
			slog.String("url", c.URL))
	}
	return b, nil
}

// newClient is a client for the licence API with timeouts at every step
// and enough idle connections for many logins in parallel (the default of
// two per host would make most of them open a new TLS connection).
func newClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.TLSHandshakeTimeout = timeout
	t.ResponseHeaderTimeout = timeout
	return &http.Client{Timeout: timeout, Transport: t}
}

// BackendName is the backend label of metrics and log lines.
func (b *Backend) BackendName() string { return "http" }

// Close implements license.Closer: it drops the idle connections of the
// client Open built (not of one lent through license.Env).
func (b *Backend) Close() {
	if b.ownClient {
		b.client.CloseIdleConnections()
	}
}
