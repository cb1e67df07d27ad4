package backends

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/acme/registry-gateway/internal/license"
)

// Licenses is the token service's licence source: the configured backend
// behind the cache. Lookup and Healthy are the cache's.
type Licenses struct {
	*license.Cache
	backend license.Backend
	name    string        // the section's key; "" for a backend of Options
	probe   time.Duration // licenses.probe_interval
}

// Options are what a Config cannot say.
type Options struct {
	// Backend, if set, is used instead of the configured backend (still
	// behind the cache); the section may then name none.
	Backend license.Backend
	// Observer receives the cache's metrics events.
	Observer license.Observer
}

// Open opens the backend cfg names (or takes opts.Backend) and puts it
// behind the cache; env lends the clock, the logger and an HTTP client,
// cfg.PollInterval is added. Errors are prefixed with the section
// (licenses.http: …). cfg is expected to be defaulted and checked:
// without exactly one backend (and no opts.Backend) Open returns nil and
// no error, Problems having said what is wrong.
func Open(ctx context.Context, cfg Config, env license.Env, opts Options) (*Licenses, error) {
	env.PollInterval = cfg.PollInterval
	l := &Licenses{backend: opts.Backend, probe: cfg.ProbeInterval}
	if l.backend == nil {
		if len(cfg.Backends) != 1 {
			return nil, nil
		}
		for name, bc := range cfg.Backends {
			if bc == nil || registry[name] == nil {
				return nil, nil
			}
			b, err := bc.Open(ctx, env)
			if err != nil {
				return nil, fmt.Errorf("licenses.%s: %w", name, err)
			}
			l.backend, l.name = b, name
		}
	}
	l.Cache = license.NewCache(l.backend, license.CacheConfig{
		TTL:         cfg.CacheTTL,
		NegativeTTL: cfg.NegativeCacheTTL,
		MaxEntries:  cfg.CacheSize,
		Clock:       env.Clock,
		Observer:    opts.Observer,
		Logger:      env.Logger,
	})
	return l, nil
}

// Watch does the background work until ctx ends: the configured backend's
// own (polling the licence file, the account database's change counter)
// and the probing of a backend that failed, so that readiness recovers
// without logins. It returns what stopped the backend's work.
func (l *Licenses) Watch(ctx context.Context) error {
	var wg sync.WaitGroup
	var runErr error
	if r, ok := l.backend.(license.Runner); ok && l.name != "" {
		wg.Go(func() { runErr = r.Run(ctx) })
	}
	wg.Go(func() { _ = l.Monitor(ctx, l.probe) })
	wg.Wait()
	<-ctx.Done()
	return runErr
}

// Close releases what Open acquired for the configured backend (its
// connections); a backend of Options is the caller's to close.
func (l *Licenses) Close() {
	if c, ok := l.backend.(license.Closer); ok && l.name != "" {
		c.Close()
	}
}
