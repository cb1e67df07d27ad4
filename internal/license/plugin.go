package license

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// BackendConfig is one backend's section of the token service's
// configuration (licenses.file, licenses.http, licenses.sql, …) as its
// package decoded it. The token service fills in the defaults, collects
// the problems with those of the rest of the file, and opens the one
// backend configured.
type BackendConfig interface {
	// SetDefaults fills in the optional keys left empty.
	SetDefaults()
	// Problems lists every problem of the values, each prefixed with
	// where (e.g. "licenses.http"). It reads no files and opens nothing,
	// so that `check-config -skip-files` can call it.
	Problems(where string) []error
	// Open builds the backend: it loads files, connects to databases.
	// ctx bounds the opening, not the backend's life. The Backend may
	// also be a Prober, Versioned, AccountFinder, Runner or Closer.
	Open(ctx context.Context, env Env) (Backend, error)
}

// Decoder reads one backend's section strictly (see DecodeSection) and
// returns nil for an empty section, which counts as not set. Every
// backend package has one, named Decode; the registry of backends maps
// the section's key to it.
type Decoder func(section *yaml.Node) (BackendConfig, error)

// Env is what the token service lends the backend it opens.
type Env struct {
	// Clock decides expiry; time.Now in production.
	Clock func() time.Time
	// Logger receives the backend's own lines (reloads, warnings).
	Logger *slog.Logger
	// HTTPClient, if set, is the client of a backend that calls an HTTP
	// API; nil, the backend builds its own and releases it on Close.
	HTTPClient *http.Client
	// PollInterval is how often a backend that follows its source by
	// polling looks for changes (licenses.poll_interval).
	PollInterval time.Duration
}

// Runner is implemented by a Backend with background work (polling a file
// or a change counter). The token service runs it while it serves; Run
// returns once ctx ends.
type Runner interface {
	Run(ctx context.Context) error
}

// Closer is implemented by a Backend that holds something to release
// (connections). Close logs what it cannot release rather than return it:
// its caller is shutting down and could do nothing else with it.
type Closer interface {
	Close()
}

// DecodeSection decodes a backend's section into v (a pointer to a
// struct) as a yaml.Decoder with KnownFields would: a key that names no
// field of the struct (or of a struct inlined in it) is an error naming
// its line, like a type error, and every problem is reported in one
// *yaml.TypeError. Only the section's own keys are checked, so its
// fields should be scalars, lists or inlined structs.
func DecodeSection(section *yaml.Node, v any) error {
	var errs []string
	t := reflect.TypeOf(v).Elem()
	if section.Kind == yaml.MappingNode {
		known := map[string]bool{}
		yamlKeys(t, known)
		for i := 0; i+1 < len(section.Content); i += 2 {
			k := section.Content[i]
			if !known[k.Value] {
				errs = append(errs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
			}
		}
	}
	if err := section.Decode(v); err != nil {
		te, ok := err.(*yaml.TypeError)
		if !ok {
			return err
		}
		errs = append(errs, te.Errors...)
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// yamlKeys adds the mapping keys yaml.v3 decodes into struct t to known.
func yamlKeys(t reflect.Type, known map[string]bool) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				yamlKeys(ft, known)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		known[name] = true
	}
}
