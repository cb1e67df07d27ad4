// Package embedreg runs a stock distribution registry (the reference
// implementation of the registry API) inside this process, with filesystem
// storage. Tests use it as the upstream and as a registry that checks this
// product's tokens; `make run` uses it as the local upstream.
package embedreg

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// The drivers and access controllers the options below name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Options of an embedded registry. At most one of Token and Htpasswd is set;
// with neither the registry is open.
type Options struct {
	// RootDir holds the registry's storage.
	RootDir string
	// Token makes the registry require bearer tokens from a token service.
	Token *TokenAuth
	// Htpasswd makes the registry require Basic credentials from a file it
	// rereads when the file changes.
	Htpasswd *HtpasswdAuth
	// LogLevel of the registry's global logrus logger; default "error".
	LogLevel string
}

// TokenAuth is the registry's auth.token section.
type TokenAuth struct {
	Realm, Service, Issuer string
	// RootCertBundle (PEM certificates) or JWKS (file) says which keys to
	// trust; set one.
	RootCertBundle string
	JWKS           string
}

// HtpasswdAuth is the registry's auth.htpasswd section.
type HtpasswdAuth struct {
	Realm, Path string
}

// New returns the registry's handler. ctx bounds its background work.
func New(ctx context.Context, opts Options) (http.Handler, error) {
	if opts.RootDir == "" {
		return nil, errors.New("embedreg: RootDir is required")
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	// The registry logs through the global logrus logger; keep it quiet
	// unless asked, and never at a level that prints request headers.
	level, err := logrus.ParseLevel(opts.LogLevel)
	if err != nil {
		return nil, err
	}
	logrus.SetLevel(level)

	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": opts.RootDir},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	cfg.Log.Level = configuration.Loglevel(opts.LogLevel)
	cfg.Log.AccessLog.Disabled = true
	// A configuration built in Go skips the parser's defaults; without these
	// catalog and tag listings fail with PAGINATION_NUMBER_INVALID.
	cfg.Catalog.MaxEntries = 1000
	cfg.Tags.MaxTags = 1000
	switch {
	case opts.Token != nil && opts.Htpasswd != nil:
		return nil, errors.New("embedreg: set Token or Htpasswd, not both")
	case opts.Token != nil:
		p := configuration.Parameters{
			"realm":   opts.Token.Realm,
			"service": opts.Token.Service,
			"issuer":  opts.Token.Issuer,
		}
		if opts.Token.RootCertBundle != "" {
			p["rootcertbundle"] = opts.Token.RootCertBundle
		}
		if opts.Token.JWKS != "" {
			p["jwks"] = opts.Token.JWKS
		}
		cfg.Auth = configuration.Auth{"token": p}
	case opts.Htpasswd != nil:
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": opts.Htpasswd.Realm, "path": opts.Htpasswd.Path,
		}}
	}
	return newApp(ctx, cfg)
}

// newApp turns the panics NewApp uses for configuration errors into errors.
func newApp(ctx context.Context, cfg *configuration.Configuration) (h http.Handler, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("embedreg: %v", v)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}
