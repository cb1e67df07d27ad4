package filebackend

import (
	"context"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/license"
)

// Config is the section licenses.file: the path of the licence file, a
// scalar (`file: /etc/tokenserver/licenses.yaml`). How often the file is
// polled is licenses.poll_interval (license.Env.PollInterval).
type Config struct {
	Path string
}

// Decode reads licenses.file. An empty path is no section.
func Decode(section *yaml.Node) (license.BackendConfig, error) {
	if section.Kind != yaml.ScalarNode {
		return nil, &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: licenses.file must be the path of the licence file", section.Line)}}
	}
	var c Config
	if err := section.Decode(&c.Path); err != nil {
		return nil, err
	}
	if c.Path == "" {
		return nil, nil
	}
	return &c, nil
}

// SetDefaults implements license.BackendConfig; the file backend has no
// optional keys of its own.
func (c *Config) SetDefaults() {}

// Problems implements license.BackendConfig.
func (c *Config) Problems(where string) []error {
	if c.Path == "" {
		return []error{fmt.Errorf("%s: the path of the licence file is required", where)}
	}
	return nil
}

// Open implements license.BackendConfig: it loads the file once.
func (c *Config) Open(_ context.Context, env license.Env) (license.Backend, error) {
	return New(c.Path, Options{Clock: env.Clock, Logger: env.Logger, PollInterval: env.PollInterval})
}

// BackendName is the backend label of metrics and log lines.
func (f *Backend) BackendName() string { return "file" }
