package gateway

import (
	"github.com/acme/registry-gateway/pkg/ecr"
	"github.com/acme/registry-gateway/pkg/upstream"
	"github.com/acme/registry-gateway/pkg/upstream/static"
)

// providers are the upstream providers by their key under upstream: in the
// configuration file, each with the empty section its key decodes into.
// Adding a provider is its package and one line here.
var providers = map[string]func() upstream.Config{
	"ecr":    ecr.NewConfig,
	"static": static.NewConfig,
}

// ProviderConfigs are an empty configuration of each provider, by its key:
// what the configuration reference's test walks for the providers' keys.
func ProviderConfigs() map[string]upstream.Config {
	out := make(map[string]upstream.Config, len(providers))
	for k, newConfig := range providers {
		out[k] = newConfig()
	}
	return out
}
