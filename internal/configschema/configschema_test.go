package configschema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/license/backends"
)

var chartSchema = filepath.Join("..", "..", "charts", "registry-gateway", "values.schema.json")

// The committed chart schema holds exactly what the config structs give:
// a key added to (or renamed in) a config struct fails here until
// `make chart-schema` is run, so that the chart never refuses a valid key
// nor lets a misspelt one through.
func TestChartSchemaInStep(t *testing.T) {
	doc, err := os.ReadFile(chartSchema)
	if err != nil {
		t.Fatal(err)
	}
	want, err := UpdateChart(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		for _, service := range []string{"tokenserver", "gateway"} {
			have, err := ChartConfig(doc, service)
			if err != nil {
				t.Fatal(err)
			}
			gen, _ := ChartConfig(want, service)
			if !reflect.DeepEqual(have, gen) {
				t.Errorf("%s: properties.%s.properties.config differs from the %s config structs", chartSchema, service, service)
			}
		}
		t.Errorf("%s is not what `make chart-schema` (go run ./internal/configschema/cmd) writes: run it and commit the result", chartSchema)
	}
}

type inner struct {
	Name  string   `yaml:"name"`
	Hosts []string `yaml:"hosts"`
}

type embedded struct {
	CertFile string `yaml:"cert_file"`
}

type sample struct {
	embedded   `yaml:",inline"`
	Plain      int
	Skipped    string `yaml:"-"`
	unexported string
	Wait       *time.Duration    `yaml:"wait,omitempty"`
	Rate       float64           `yaml:"rate"`
	Count      uint16            `yaml:"count"`
	On         *bool             `yaml:"on"`
	Inner      *inner            `yaml:"inner"`
	List       []inner           `yaml:"list"`
	ByName     map[string]*inner `yaml:"by_name"`
	Labels     map[string]string `yaml:"labels"`
	Raw        yaml.Node         `yaml:"raw"`
}

func TestFor(t *testing.T) {
	_ = sample{}.unexported
	s, err := For(reflect.TypeFor[sample]())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(s, "", " ")
	props := s["properties"].(Schema)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range props {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"by_name", "cert_file", "count", "inner", "labels", "list", "on", "plain", "rate", "raw", "wait"}; !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	for key, want := range map[string]string{
		"cert_file": `{"type":["string","null"]}`,
		"plain":     `{"type":["integer","null"]}`,
		"count":     `{"minimum":0,"type":["integer","null"]}`,
		"rate":      `{"type":["number","null"]}`,
		"on":        `{"type":["boolean","null"]}`,
		"raw":       `{}`,
		"wait":      `{"pattern":` + mustJSON(DurationPattern) + `,"type":["string","null"]}`,
		"labels":    `{"additionalProperties":{"type":["string","null"]},"type":["object","null"]}`,
		"inner": `{"additionalProperties":false,"properties":{"hosts":{"items":{"type":"string"},"type":["array","null"]},` +
			`"name":{"type":["string","null"]}},"type":["object","null"]}`,
		"list": `{"items":{"additionalProperties":false,"properties":{"hosts":{"items":{"type":"string"},"type":["array","null"]},` +
			`"name":{"type":["string","null"]}},"type":"object"},"type":["array","null"]}`,
	} {
		if g := mustJSON(props[key]); g != want {
			t.Errorf("%s: %s\nwant %s", key, g, want)
		}
	}
	if s["additionalProperties"] != false {
		t.Errorf("root not closed:\n%s", got)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

type selfDecoding struct{ x int }

func (s *selfDecoding) UnmarshalYAML(n *yaml.Node) error { return n.Decode(&s.x) }

// A type that decodes itself hides its keys from reflection: For refuses
// it rather than guess.
func TestForRefusesSelfDecodingTypes(t *testing.T) {
	type cfg struct {
		Odd selfDecoding `yaml:"odd"`
	}
	if _, err := For(reflect.TypeFor[cfg]()); err == nil || !strings.Contains(err.Error(), "odd") {
		t.Errorf("err %v", err)
	}
	if _, err := For(reflect.TypeFor[struct {
		M map[int]string `yaml:"m"`
	}]()); err == nil {
		t.Error("a map with integer keys was accepted")
	}
}

// Every licence backend and every upstream provider has its section, with
// the shape its own decoder reads.
func TestSections(t *testing.T) {
	ts, err := Tokenserver()
	if err != nil {
		t.Fatal(err)
	}
	lic := ts["properties"].(Schema)["licenses"].(Schema)["properties"].(Schema)
	for _, key := range backends.Keys() {
		if lic[key] == nil {
			t.Errorf("licenses.%s missing", key)
		}
	}
	if f := mustJSON(lic["file"]); f != `{"type":["string","null"]}` {
		t.Errorf("licenses.file %s", f)
	}
	sql := lic["sql"].(Schema)["properties"].(Schema)
	if sql["driver"] == nil || sql["dsn_file"] == nil || sql["revocation_poll"] == nil {
		t.Errorf("licenses.sql %v", sql)
	}
	gw, err := Gateway()
	if err != nil {
		t.Fatal(err)
	}
	up := gw["properties"].(Schema)["upstream"].(Schema)["properties"].(Schema)
	for key := range gateway.ProviderConfigs() {
		if up[key] == nil {
			t.Errorf("upstream.%s missing", key)
		}
	}
	if up["url"] == nil || up["ecr"].(Schema)["properties"].(Schema)["region"] == nil {
		t.Errorf("upstream %v", up)
	}
}

// DurationPattern accepts what time.ParseDuration does.
func TestDurationPattern(t *testing.T) {
	re := regexp.MustCompile(DurationPattern)
	for _, s := range []string{"0", "5m", "1h30m", "1.5s", ".5s", "300ms", "2us", "2µs", "-1s", "720h"} {
		if _, err := time.ParseDuration(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if !re.MatchString(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "5", "5 m", "1d", "m", "ten minutes", "1h 30m"} {
		if re.MatchString(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestUpdateChartErrors(t *testing.T) {
	for _, doc := range []string{`{`, `{"properties": {"tokenserver": {}}}`, `{"properties": {"tokenserver": {"properties": {}}}}`} {
		if _, err := UpdateChart([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", doc)
		}
	}
}
