package backends

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/filebackend"
)

// Defaults of the optional keys.
const (
	DefaultCacheTTL         = license.DefaultTTL
	DefaultNegativeCacheTTL = license.DefaultNegativeTTL
	DefaultCacheSize        = license.DefaultMaxEntries
	DefaultPollInterval     = filebackend.DefaultPollInterval
	DefaultProbeInterval    = license.DefaultProbeInterval
)

// Bounds of probe_interval: probes go to the vendor's API from every
// replica, and a replica should not stay out of rotation for long after
// the API is back.
const (
	MinProbeInterval = time.Second
	MaxProbeInterval = time.Minute
)

// Config is the licenses section: the cache in front of the backend, how
// the backend is followed, and the backend's own section. Exactly one
// backend section must be set.
type Config struct {
	// CacheTTL is how long an answer is served without asking again.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// NegativeCacheTTL is how long bad credentials are remembered.
	NegativeCacheTTL time.Duration `yaml:"negative_cache_ttl"`
	// CacheSize bounds the cached answers.
	CacheSize int `yaml:"cache_size"`
	// PollInterval is how often a backend that follows its source by
	// polling (the licence file) checks it for changes.
	PollInterval time.Duration `yaml:"poll_interval"`
	// ProbeInterval is how often a backend that failed is probed, so that
	// readiness recovers without logins.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// Backends are the backend sections set, by key (licenses.file,
	// licenses.http, licenses.sql), as each backend's package decoded
	// them.
	Backends Sections `yaml:"-"`
}

// Sections are backend sections by key.
type Sections map[string]license.BackendConfig

// section is Config without its methods: the keys that are not backend
// sections, decoded as they are.
type section Config

// UnmarshalYAML decodes the section strictly: the keys of the registry go
// to their backend's Decode, the others are the cache's, and a key that is
// neither is an error. Every problem is reported, as yaml.v3 does for a
// whole document. A backend key with no value (`http:`) is not set.
func (c *Config) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: licenses must be a mapping", node.Line)}}
	}
	var errs []string
	collect := func(err error) error {
		if te, ok := err.(*yaml.TypeError); ok {
			errs = append(errs, te.Errors...)
			return nil
		}
		return err
	}
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: node.Line, Column: node.Column}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		decode, ok := registry[k.Value]
		if !ok {
			rest.Content = append(rest.Content, k, v)
			continue
		}
		if v.ShortTag() == "!!null" {
			continue
		}
		bc, err := decode(v)
		if err != nil {
			if err := collect(err); err != nil {
				return err
			}
			continue
		}
		if bc != nil {
			if c.Backends == nil {
				c.Backends = Sections{}
			}
			c.Backends[k.Value] = bc
		}
	}
	if err := license.DecodeSection(rest, (*section)(c)); err != nil {
		if err := collect(err); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// SetDefaults fills in the optional keys left empty, the backend's too.
func (c *Config) SetDefaults() {
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.NegativeCacheTTL == 0 {
		c.NegativeCacheTTL = DefaultNegativeCacheTTL
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	for _, b := range c.Backends {
		if b != nil {
			b.SetDefaults()
		}
	}
}

// Problems lists what is wrong with the section, each prefixed with where
// it is ("licenses…"). needBackend false: the caller supplies a backend of
// its own, so none need be configured. It reads no files.
func (c *Config) Problems(needBackend bool) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case len(c.Backends) > 1:
		add("licenses: set exactly one of %s, not several", Names())
	case len(c.Backends) == 0 && needBackend:
		add("licenses: set exactly one of %s", Names())
	}
	for _, name := range slices.Sorted(maps.Keys(c.Backends)) {
		switch b := c.Backends[name]; {
		case registry[name] == nil:
			add("licenses.%s: not a licence backend (one of %s)", name, Names())
		case b == nil:
			add("licenses.%s: empty", name)
		default:
			errs = append(errs, b.Problems("licenses."+name)...)
		}
	}
	if c.CacheTTL < 0 {
		add("licenses.cache_ttl: %v is negative", c.CacheTTL)
	}
	if c.NegativeCacheTTL < 0 {
		add("licenses.negative_cache_ttl: %v is negative", c.NegativeCacheTTL)
	}
	if c.CacheSize < 0 {
		add("licenses.cache_size: %d is negative", c.CacheSize)
	}
	if c.PollInterval < 0 {
		add("licenses.poll_interval: %v is negative", c.PollInterval)
	}
	if c.ProbeInterval < MinProbeInterval || c.ProbeInterval > MaxProbeInterval {
		add("licenses.probe_interval: %v is outside [%v, %v]", c.ProbeInterval, MinProbeInterval, MaxProbeInterval)
	}
	return errs
}

// Keys are the backends' keys of the licenses section, sorted.
func Keys() []string { return slices.Sorted(maps.Keys(registry)) }

// Names lists the backends' keys for messages: "file, http and sql".
func Names() string {
	names := Keys()
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
