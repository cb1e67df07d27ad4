// Package upstream is the contract between the gateway and the registry it
// forwards to: what an upstream provider (ECR, a registry with a static
// password, …) must offer, and the generic parts every provider shares.
//
// A [Provider] fetches the upstream [Credential] ([Fetcher]) and says how
// long a redirect URL the upstream answered a blob request with stays valid
// ([Provider.RedirectExpiry]); it may also list the upstream's repositories
// ([RepositoryLister]). A [Source] holds the current credential and keeps it
// fresh in the background, for any Fetcher.
//
// A provider's configuration is its own: a [Config] is the provider's
// section of the gateway's configuration file (upstream.<key>), decoded
// strictly into the provider's struct and validated by it. The gateway keeps
// one table of providers by key; adding a provider is one package that
// implements Config and Provider, and one line in that table.
//
// The package holds no implementation of a provider and imports nothing of
// the gateway's.
package upstream

import (
	"context"
	"net/url"
	"time"
)

// Provider is an upstream registry as the gateway uses it.
type Provider interface {
	// Fetcher obtains a new credential; the gateway keeps it fresh with a
	// Source.
	Fetcher
	// RedirectExpiry is when a redirect URL the upstream answered a blob
	// GET with stops working (a presigned storage URL). ok is false when
	// the URL does not tell; the gateway then never hands it out again.
	RedirectExpiry(u *url.URL) (expires time.Time, ok bool)
}

// RepositoryLister is what a Provider may also offer: every repository of
// the upstream registry (the upstream's names), for the gateway's catalog.
// Without it the gateway asks the upstream's /v2/_catalog.
type RepositoryLister interface {
	Repositories(ctx context.Context) ([]string, error)
}

// Config is a provider's section of the gateway's configuration file
// (upstream.<key>). It must be a pointer to a struct with yaml tags: the
// gateway decodes the section into it strictly (an unknown key is an
// error), then asks it to validate itself.
type Config interface {
	// Validate reports every problem of the section, each one starting with
	// the key it is about ("region: required"); the gateway puts
	// "upstream.<key>." in front.
	Validate() []error
	// CheckFiles loads the files the section names the way the provider
	// will (check-config); it contacts nothing.
	CheckFiles(ctx context.Context) error
	// Provider builds the provider of the section.
	Provider(ctx context.Context, env Env) (Provider, error)
}

// Env is what the gateway tells a provider it builds.
type Env struct {
	// URL is upstream.url, the registry's base URL.
	URL string
	// MaxRepositories bounds the names a RepositoryLister collects, so that
	// a misbehaving endpoint cannot grow the gateway's memory without end;
	// 0: no bound.
	MaxRepositories int
}
