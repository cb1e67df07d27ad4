package docs_test

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type walkInner struct {
	Name  string   `yaml:"name"`
	Hosts []string `yaml:"hosts"`
}

type walkEmbedded struct {
	CertFile string `yaml:"cert_file"`
}

type walkConfig struct {
	walkEmbedded `yaml:",inline"`
	Plain        int
	Skipped      string `yaml:"-"`
	unexported   string
	Wait         *time.Duration        `yaml:"wait,omitempty"`
	Rate         float64               `yaml:"rate"`
	On           *bool                 `yaml:"on"`
	Until        time.Time             `yaml:"until"`
	Inner        *walkInner            `yaml:"inner"`
	List         []walkInner           `yaml:"list"`
	ByName       map[string]*walkInner `yaml:"by_name"`
	Labels       map[string]string     `yaml:"labels"`
}

// keysOf finds every leaf the YAML decoder fills, named as the reference
// names it, whatever the shape of the struct holding it.
func TestKeysOf(t *testing.T) {
	_ = walkConfig{}.unexported
	var got []string
	for _, k := range keysOf(reflect.TypeFor[walkConfig](), "top") {
		got = append(got, k.path+" "+k.typ)
	}
	want := []string{
		"top.by_name.*.hosts list of strings",
		"top.by_name.*.name string",
		"top.cert_file string",
		"top.inner.hosts list of strings",
		"top.inner.name string",
		"top.labels map of strings",
		"top.list[].hosts list of strings",
		"top.list[].name string",
		"top.on bool",
		"top.plain integer",
		"top.rate number",
		"top.until time",
		"top.wait duration",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The reference's key rows are read by section; a bar escaped in a cell
// stays in the cell, and malformed key rows are reported.
func TestParseReference(t *testing.T) {
	doc := strings.Join([]string{
		"# Configuration",
		"## gateway.yaml",
		"| key | type | default | meaning |",
		"|---|---|---|---|",
		"| `listen` | string | `127.0.0.1:5000` | where |",
		"| `manifest_cache.disabled` | bool | `false` | `hit\\|miss` |",
		"## other",
		"| value | default |",
		"| `host` | x |",
	}, "\n")
	got, err := parseReference(doc)
	if err == nil {
		t.Fatalf("a key row of 2 cells was accepted: %v", got)
	}
	if !strings.Contains(err.Error(), "line 9") {
		t.Errorf("error does not name the line: %v", err)
	}
	got, err = parseReference(strings.Join(strings.Split(doc, "\n")[:6], "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := got["gateway.yaml"]["listen"]; r.typ != "string" || r.line != 5 {
		t.Errorf("listen: %+v", r)
	}
	if _, ok := got["gateway.yaml"]["manifest_cache.disabled"]; !ok || len(got["gateway.yaml"]) != 2 {
		t.Errorf("rows: %+v", got)
	}
	for _, bad := range []string{
		"## s\n| `a` / `b` | int | 1 | two keys in one row |",
		"## s\n| `a` | string | 1 | x |\n| `a` | string | 1 | twice |",
		"| `a` | string | 1 | before any section |",
	} {
		if _, err := parseReference(bad); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}
