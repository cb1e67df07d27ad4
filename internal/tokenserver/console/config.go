package console

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults of the console's keys.
const (
	DefaultSessionIdle   = 30 * time.Minute
	DefaultSessionMax    = 12 * time.Hour
	DefaultSignInLinkTTL = 72 * time.Hour
)

// Config is the console section (console.*) of the token service's
// configuration.
type Config struct {
	// Enabled serves the console under /console/ on admin.listen (which,
	// with licenses.sql, it needs).
	Enabled bool `yaml:"enabled"`
	// PublicURL is the console's address as browsers reach it, e.g.
	// https://console.example.com/console/: sign-in links and the
	// customer help URL are made from it. Default: the address of the
	// request that makes the link.
	PublicURL string `yaml:"public_url"`
	// RegistryURL is the gateway as the token service reaches it: the
	// console reads the repositories and tags a customer may pull through
	// the gateway's licence-filtered /v2/_catalog and tags/list.
	RegistryURL string `yaml:"registry_url"`
	// RegistryCAFile is a PEM file of the CAs registry_url's certificate
	// is verified against; default the system's roots.
	RegistryCAFile string `yaml:"registry_ca_file"`
	// RegistryHost is the registry as customers write it in `docker login`
	// and image names (host[:port]); default the host of registry_url.
	RegistryHost string `yaml:"registry_host"`
	// SessionIdle ends a session not used for this long.
	SessionIdle time.Duration `yaml:"session_idle"`
	// SessionMax ends a session this long after its sign-in, used or not.
	SessionMax time.Duration `yaml:"session_max"`
	// SignInLinkTTL is how long a one-time sign-in link stays valid.
	SignInLinkTTL time.Duration `yaml:"sign_in_link_ttl"`
	// OIDC is the vendor's single sign-on (vendor.go).
	OIDC OIDCConfig `yaml:"oidc"`
}

// SetDefaults fills in the keys left empty.
func (c *Config) SetDefaults() {
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.SessionMax == 0 {
		c.SessionMax = DefaultSessionMax
	}
	if c.SignInLinkTTL == 0 {
		c.SignInLinkTTL = DefaultSignInLinkTTL
	}
}

// Problems lists what is wrong with the section, every key at once.
func (c *Config) Problems() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("console.public_url: %q is not an http or https URL", c.PublicURL)
		} else if !strings.HasSuffix(u.Path, Prefix) {
			add("console.public_url: %q must end in %s (where the console is served)", c.PublicURL, Prefix)
		}
	}
	if c.RegistryURL != "" {
		if u, err := url.Parse(c.RegistryURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("console.registry_url: %q is not an http or https URL", c.RegistryURL)
		}
	} else if c.Enabled {
		add("console.registry_url: required with console.enabled: customers' pages read the gateway's view of their licence")
	}
	if h := c.RegistryHost; h != "" && (strings.Contains(h, "/") || strings.ContainsAny(h, " \t")) {
		add("console.registry_host: %q is not host[:port]", h)
	}
	if c.SessionIdle < time.Minute || c.SessionIdle > 24*time.Hour {
		add("console.session_idle: %v is outside [1m, 24h]", c.SessionIdle)
	}
	if c.SessionMax < c.SessionIdle || c.SessionMax > 30*24*time.Hour {
		add("console.session_max: %v is shorter than session_idle or over 720h", c.SessionMax)
	}
	if c.SignInLinkTTL < time.Minute || c.SignInLinkTTL > 30*24*time.Hour {
		add("console.sign_in_link_ttl: %v is outside [1m, 720h]", c.SignInLinkTTL)
	}
	return append(errs, c.OIDC.problems()...)
}

// HelpURL is the console's help page for refusals, when public_url says
// where the console is; "" otherwise.
func (c *Config) HelpURL() string {
	if c.PublicURL == "" {
		return ""
	}
	return c.PublicURL + "help"
}
