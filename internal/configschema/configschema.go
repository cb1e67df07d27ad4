// Package configschema derives JSON Schemas of the services' configuration
// files from their config structs, as go.yaml.in/yaml/v3 decodes them
// (yaml tags, inline structs, the licence backends' and upstream
// providers' sections), so that the Helm chart's values.schema.json
// refuses a misspelt key or a wrong type in `tokenserver.config` and
// `gateway.config` before anything is installed. The structs stay the one
// source of truth: `make chart-schema` writes the two subtrees into the
// chart's schema, and a test fails when the committed file drifts.
//
// The schema says what the decoder accepts, not what Validate accepts: a
// duration must be a duration string, a port a number, but ranges, one
// backend of several and file contents stay check-config's.
package configschema

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// Schema is a JSON Schema (draft-07) as a JSON object.
type Schema = map[string]any

// DurationPattern matches what time.ParseDuration accepts, which is what
// the YAML decoder uses for a time.Duration (it refuses a bare number
// other than 0 written as a string).
const DurationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

var (
	durationType   = reflect.TypeFor[time.Duration]()
	timeType       = reflect.TypeFor[time.Time]()
	nodeType       = reflect.TypeFor[yaml.Node]()
	backendsType   = reflect.TypeFor[backends.Config]()
	upstreamType   = reflect.TypeFor[gateway.UpstreamConfig]()
	unmarshalerV3  = reflect.TypeFor[yaml.Unmarshaler]()
	unmarshalerOld = reflect.TypeFor[interface {
		UnmarshalYAML(func(any) error) error
	}]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// Tokenserver is the schema of tokenserver.yaml.
func Tokenserver() (Schema, error) {
	return For(reflect.TypeFor[tokenserver.Config]())
}

// Gateway is the schema of gateway.yaml.
func Gateway() (Schema, error) {
	return For(reflect.TypeFor[gateway.Config]())
}

// For is the schema of a configuration file decoded into a value of type
// t, a struct. Every mapping is closed (additionalProperties: false), as
// the services decode with KnownFields; every key may be null, which the
// decoder takes as not set (and Helm as "drop the chart's default").
func For(t reflect.Type) (Schema, error) {
	s, err := schemaOf(t, t.String())
	if err != nil {
		return nil, err
	}
	return s, nil
}

// schemaOf is the schema of a value of type t at path (for errors).
func schemaOf(t reflect.Type, path string) (Schema, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		return nullable(Schema{"type": "string", "pattern": DurationPattern}), nil
	case timeType:
		return nullable(Schema{"type": "string"}), nil
	case nodeType:
		return Schema{}, nil
	case backendsType:
		return licensesSchema(path)
	case upstreamType:
		return upstreamSchema(path)
	}
	// A type that decodes itself has keys the reflection cannot see: it
	// needs a case above, as the licences and the upstream have.
	pt := reflect.PointerTo(t)
	if pt.Implements(unmarshalerV3) || pt.Implements(unmarshalerOld) || pt.Implements(textUnmarshaler) {
		return nil, fmt.Errorf("configschema: %s: type %s decodes itself; teach configschema its keys", path, t)
	}
	switch t.Kind() {
	case reflect.String:
		return nullable(Schema{"type": "string"}), nil
	case reflect.Bool:
		return nullable(Schema{"type": "boolean"}), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return nullable(Schema{"type": "integer"}), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return nullable(Schema{"type": "integer", "minimum": 0}), nil
	case reflect.Float32, reflect.Float64:
		return nullable(Schema{"type": "number"}), nil
	case reflect.Slice, reflect.Array:
		items, err := schemaOf(t.Elem(), path+"[]")
		if err != nil {
			return nil, err
		}
		return nullable(Schema{"type": "array", "items": notNull(items)}), nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("configschema: %s: map key %s is not a string", path, t.Key())
		}
		values, err := schemaOf(t.Elem(), path+".*")
		if err != nil {
			return nil, err
		}
		return nullable(Schema{"type": "object", "additionalProperties": values}), nil
	case reflect.Struct:
		props := Schema{}
		if err := addFields(t, path, props); err != nil {
			return nil, err
		}
		return object(props), nil
	}
	return nil, fmt.Errorf("configschema: %s: no schema for type %s", path, t)
}

// addFields adds the keys of the struct t to props, as yaml.v3 names
// them: the tag's name, else the field's name in lower case; `yaml:"-"`
// and unexported fields are no keys; inline structs add theirs.
func addFields(t reflect.Type, path string, props Schema) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct {
				return fmt.Errorf("configschema: %s: inline %s is not a struct", path, f.Name)
			}
			if err := addFields(ft, path, props); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := props[name]; dup {
			return fmt.Errorf("configschema: %s: key %s twice", path, name)
		}
		s, err := schemaOf(f.Type, path+"."+name)
		if err != nil {
			return err
		}
		props[name] = s
	}
	return nil
}

// licensesSchema is the licenses section: the cache's keys and one key a
// backend of the registry, each with the section its Decode reads.
func licensesSchema(path string) (Schema, error) {
	props := Schema{}
	if err := addFields(backendsType, path, props); err != nil {
		return nil, err
	}
	for _, key := range backends.Keys() {
		s, err := backendSection(key, backends.Decoder(key))
		if err != nil {
			return nil, fmt.Errorf("configschema: %s.%s: %w", path, key, err)
		}
		props[key] = s
	}
	return object(props), nil
}

// backendSection finds the shape of a backend's section by asking its
// Decode: a mapping decodes into the backend's Config struct, whose keys
// are walked; a backend that refuses a mapping and takes a scalar (the
// licence file's path) has a string.
func backendSection(key string, decode license.Decoder) (Schema, error) {
	if decode == nil {
		return nil, fmt.Errorf("no Decode registered")
	}
	if c, err := decode(&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}); err == nil && c != nil {
		return schemaOf(reflect.TypeOf(c), "licenses."+key)
	}
	if c, err := decode(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "x"}); err == nil && c != nil {
		return nullable(Schema{"type": "string"}), nil
	}
	return nil, fmt.Errorf("its Decode takes neither a mapping nor a string")
}

// upstreamSchema is the gateway's upstream: its own keys and one key a
// provider, each with the provider's Config.
func upstreamSchema(path string) (Schema, error) {
	props := Schema{}
	if err := addFields(upstreamType, path, props); err != nil {
		return nil, err
	}
	configs := gateway.ProviderConfigs()
	for _, key := range slices.Sorted(maps.Keys(configs)) {
		s, err := schemaOf(reflect.TypeOf(configs[key]), path+"."+key)
		if err != nil {
			return nil, err
		}
		props[key] = s
	}
	return object(props), nil
}

func object(props Schema) Schema {
	return nullable(Schema{"type": "object", "additionalProperties": false, "properties": props})
}

// nullable lets a key be null: YAML's null decodes to the zero value.
func nullable(s Schema) Schema {
	s["type"] = []any{s["type"], "null"}
	return s
}

// notNull is s without null (a list's items).
func notNull(s Schema) Schema {
	if ts, ok := s["type"].([]any); ok && len(ts) == 2 && ts[1] == "null" {
		c := maps.Clone(s)
		c["type"] = ts[0]
		return c
	}
	return s
}

// The places in the chart's values schema this package owns.
var chartConfigs = []struct {
	service string
	schema  func() (Schema, error)
}{
	{"tokenserver", Tokenserver},
	{"gateway", Gateway},
}

// header is the description of each generated subtree: a reader of the
// chart's schema learns where it comes from.
const header = "the service's configuration file, one to one (docs/configuration.md); generated from its config structs by `make chart-schema`: do not edit"

// UpdateChart returns the chart's values schema doc with the subtrees
// properties.tokenserver.properties.config and
// properties.gateway.properties.config replaced by the services' schemas,
// the rest as it was, written canonically (keys sorted, two-space indent).
func UpdateChart(doc []byte) ([]byte, error) {
	var root Schema
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("configschema: the chart's schema: %w", err)
	}
	for _, c := range chartConfigs {
		parent, err := dig(root, "properties", c.service, "properties")
		if err != nil {
			return nil, err
		}
		s, err := c.schema()
		if err != nil {
			return nil, err
		}
		// The chart fills keys in and needs the file to be a mapping.
		s = notNull(s)
		s["description"] = header
		parent["config"] = s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ChartConfig is the subtree of the chart's schema doc that holds the
// configuration of service ("tokenserver" or "gateway").
func ChartConfig(doc []byte, service string) (Schema, error) {
	var root Schema
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("configschema: the chart's schema: %w", err)
	}
	parent, err := dig(root, "properties", service, "properties")
	if err != nil {
		return nil, err
	}
	s, ok := parent["config"].(Schema)
	if !ok {
		return nil, fmt.Errorf("configschema: the chart's schema has no properties.%s.properties.config", service)
	}
	return s, nil
}

func dig(s Schema, keys ...string) (Schema, error) {
	for i, k := range keys {
		next, ok := s[k].(Schema)
		if !ok {
			return nil, fmt.Errorf("configschema: the chart's schema has no object at %s", strings.Join(keys[:i+1], "."))
		}
		s = next
	}
	return s, nil
}
