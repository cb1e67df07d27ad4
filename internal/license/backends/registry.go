// Package backends is the token service's licence section: the registry
// of licence backends, the decoding and checking of licenses, and the one
// place that opens the configured backend behind the cache.
package backends

import (
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/license/httpbackend"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
)

// registry maps each key of the licenses section that names a backend to
// the Decode of the backend's package. A new backend is one package and
// one line here.
var registry = map[string]license.Decoder{
	"file": filebackend.Decode,
	"http": httpbackend.Decode,
	"sql":  sqlbackend.Decode,
}

// Decoder is the Decode of the backend key names, nil for no backend: for
// what describes the licenses section from outside (the chart's values
// schema, internal/configschema).
func Decoder(key string) license.Decoder { return registry[key] }
