package docs_test

import (
	"encoding"
	"fmt"
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
	"github.com/acme/registry-gateway/internal/license/httpbackend"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// configRef is the configuration reference, relative to this package.
var configRef = filepath.Join("..", "..", "docs", "configuration.md")

// root is a configuration struct whose keys a section of the reference
// documents.
type root struct {
	// section is the "## " heading of docs/configuration.md under which
	// the keys are tabled.
	section string
	// prefix is the dotted key the struct sits under in that file ("" for
	// the whole file), e.g. "licenses.sql" for a backend's own struct.
	prefix string
	typ    reflect.Type
}

// roots are the configuration files of both services. A backend or
// provider whose configuration struct is decoded on its own (not reachable
// through these fields) is added here with its section and prefix.
var roots = []root{
	{section: "tokenserver.yaml", typ: reflect.TypeFor[tokenserver.Config]()},
	// The licenses section decodes itself: its own keys here, each
	// backend's section by the backend's package (one root a backend of
	// internal/license/backends; TestEveryBackendDocumented checks that
	// none is missing).
	{section: "tokenserver.yaml", prefix: "licenses", typ: reflect.TypeFor[backends.Config]()},
	{section: "tokenserver.yaml", prefix: "licenses.file", typ: reflect.TypeFor[string]()}, // a scalar: the file's path
	{section: "tokenserver.yaml", prefix: "licenses.http", typ: reflect.TypeFor[httpbackend.Config]()},
	{section: "tokenserver.yaml", prefix: "licenses.sql", typ: reflect.TypeFor[sqlbackend.Config]()},
	{section: "gateway.yaml", typ: reflect.TypeFor[gateway.Config]()},
}

// allRoots are roots and, under upstream.<key>, each upstream provider's
// own configuration struct (decoded by the provider's package).
func allRoots() []root {
	out := slices.Clone(roots)
	for key, c := range gateway.ProviderConfigs() {
		out = append(out, root{section: "gateway.yaml", prefix: "upstream." + key, typ: reflect.TypeOf(c)})
	}
	return out
}

// TestEveryBackendDocumented fails when a licence backend of the registry
// has no root above, so that its keys would go unchecked.
func TestEveryBackendDocumented(t *testing.T) {
	for _, name := range backends.Keys() {
		if !slices.ContainsFunc(roots, func(r root) bool { return r.prefix == "licenses."+name }) {
			t.Errorf("licence backend %q has no root in configref_test.go: add {section: \"tokenserver.yaml\", prefix: \"licenses.%s\", typ: <its Config type>}", name, name)
		}
	}
}

// ownRoot says whether t is the type of a root with a prefix: its keys
// are listed under that root, not where a field of that type sits.
func ownRoot(t reflect.Type) bool {
	return slices.ContainsFunc(roots, func(r root) bool { return r.prefix != "" && r.typ.Kind() != reflect.String && r.typ == t })
}

// key is one configuration key: its dotted path and its type as the
// reference names it.
type key struct {
	path, typ string
}

// TestConfigurationReference fails when a configuration key has no row in
// docs/configuration.md, when a row names a key no configuration struct
// has, or when a row's type is not the key's.
func TestConfigurationReference(t *testing.T) {
	data, err := os.ReadFile(configRef)
	if err != nil {
		t.Fatal(err)
	}
	documented, err := parseReference(string(data))
	if err != nil {
		t.Fatalf("%s: %v", configRef, err)
	}
	want := map[string]map[string]string{} // section → key → type
	for _, r := range allRoots() {
		if want[r.section] == nil {
			want[r.section] = map[string]string{}
		}
		for _, k := range keysOf(r.typ, r.prefix) {
			want[r.section][k.path] = k.typ
		}
	}
	for section, rows := range documented {
		if want[section] == nil {
			t.Errorf("%s: section %q tables keys, but no configuration struct is listed for it (roots in %s)", configRef, section, "configref_test.go")
		}
		for path, row := range rows {
			typ, ok := want[section][path]
			switch {
			case want[section] == nil:
			case !ok:
				t.Errorf("%s:%d: section %q documents `%s`, which no configuration struct has: remove the row or fix its name", configRef, row.line, section, path)
			case row.typ != typ:
				t.Errorf("%s:%d: `%s` is documented as %q; its type is %q", configRef, row.line, path, row.typ, typ)
			}
		}
	}
	for _, section := range slices.Sorted(mapKeys(want)) {
		for _, path := range slices.Sorted(mapKeys(want[section])) {
			if _, ok := documented[section][path]; !ok {
				t.Errorf("%s: `%s` (%s) is not documented: add the row\n\t| `%s` | %s | <default> | <meaning> |\nto the table under \"## %s\"",
					configRef, path, want[section][path], path, want[section][path], section)
			}
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// row is a key row of the reference.
type row struct {
	typ  string
	line int
}

// keyCell is the first cell of a key row: one dotted key in backticks.
var keyCell = regexp.MustCompile("^`([a-z0-9_]+(?:\\[\\])?(?:\\.(?:[a-z0-9_]+|\\*)(?:\\[\\])?)*)`$")

// parseReference returns the key rows of the reference by "## " section.
// A key row is a table row whose first cell is a key in backticks and
// whose second is its type; the other rows of a table (its header, the
// separator) and every other line are prose.
func parseReference(doc string) (map[string]map[string]row, error) {
	out := map[string]map[string]row{}
	section := ""
	var errs []string
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		if h, ok := strings.CutPrefix(line, "## "); ok {
			section = strings.TrimSpace(h)
			continue
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := splitRow(line)
		if len(cells) == 0 {
			continue
		}
		m := keyCell.FindStringSubmatch(cells[0])
		if m == nil {
			if strings.HasPrefix(cells[0], "`") {
				errs = append(errs, fmt.Sprintf("line %d: first cell %s is not one dotted key in backticks (one key a row)", n, cells[0]))
			}
			continue
		}
		if len(cells) != 4 {
			errs = append(errs, fmt.Sprintf("line %d: a key row has 4 cells (key, type, default, meaning), this one %d", n, len(cells)))
			continue
		}
		if section == "" {
			errs = append(errs, fmt.Sprintf("line %d: key row before any \"## \" section", n))
			continue
		}
		if out[section] == nil {
			out[section] = map[string]row{}
		}
		if prev, dup := out[section][m[1]]; dup {
			errs = append(errs, fmt.Sprintf("line %d: `%s` is documented twice in %q (first at line %d)", n, m[1], section, prev.line))
			continue
		}
		out[section][m[1]] = row{typ: cells[1], line: n}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

// splitRow splits a Markdown table row into its trimmed cells; `\|` is a
// literal bar inside a cell.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	timeType            = reflect.TypeFor[time.Time]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// keysOf lists the keys of t, a struct decoded by go.yaml.in/yaml/v3,
// under prefix: every leaf, found through structs, pointers, inline
// structs, slices (`list[].key`) and maps (`map.*.key`) of structs. A
// field's key is its yaml tag's name, or its name in lower case as the
// decoder makes it; `yaml:"-"` and unexported fields are not keys.
func keysOf(t reflect.Type, prefix string) []key {
	var out []key
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		// A root's fields are its keys, also when it decodes itself.
		walkFields(t, prefix, &out)
	} else {
		walk(t, prefix, &out)
	}
	slices.SortFunc(out, func(a, b key) int { return strings.Compare(a.path, b.path) })
	return out
}

func walk(t reflect.Type, path string, out *[]key) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if ownRoot(t) {
		return
	}
	if isLeaf(t) {
		if path != "" {
			*out = append(*out, key{path: path, typ: typeName(t)})
		}
		return
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		walk(t.Elem(), path+"[]", out)
	case reflect.Map:
		walk(t.Elem(), join(path, "*"), out)
	case reflect.Struct:
		walkFields(t, path, out)
	}
}

// walkFields lists the keys of the fields of the struct t under path.
func walkFields(t reflect.Type, path string, out *[]key) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			walk(f.Type, path, out)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		walk(f.Type, join(path, name), out)
	}
}

// isLeaf says whether a value of t is one key's value rather than a
// mapping of further keys.
func isLeaf(t reflect.Type) bool {
	if t == timeType || t == nodeType || t == durationType {
		return true
	}
	pt := reflect.PointerTo(t)
	if t.Kind() == reflect.Struct && (pt.Implements(yamlUnmarshalerType) || pt.Implements(textUnmarshalerType)) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		return false
	case reflect.Slice, reflect.Array, reflect.Map:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		return isLeaf(e)
	}
	return true
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// typeName is a key's type as the reference's type column names it.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "duration"
	case t == timeType:
		return "time"
	case t == nodeType:
		return "any"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list of " + plural(typeName(t.Elem()))
	case reflect.Map:
		return "map of " + plural(typeName(t.Elem()))
	}
	return t.String()
}

func plural(s string) string {
	if strings.HasSuffix(s, "s") || strings.HasPrefix(s, "list ") || strings.HasPrefix(s, "map ") {
		return s
	}
	return s + "s"
}
