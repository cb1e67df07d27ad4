package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// modulePath is the module whose pkg/ tree must not depend on its
// internal/ tree.
const modulePath = "github.com/acme/registry-gateway"

// pkg/ is what other modules may import; internal/ is free to change under
// them. No package under pkg/ may import one under internal/, directly or
// through another pkg/ package (their tests may: they are not compiled into
// an importer). go test puts its own toolchain first in PATH, so "go" is the
// go that builds this test.
func TestPkgImportsNoInternal(t *testing.T) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-json=ImportPath,Imports,Module", modulePath+"/pkg/...")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Module     *struct{ Path string }
	}
	seen := 0
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Module == nil || p.Module.Path != modulePath || !strings.HasPrefix(p.ImportPath, modulePath+"/pkg/") {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if imp == modulePath+"/internal" || strings.HasPrefix(imp, modulePath+"/internal/") {
				t.Errorf("%s imports %s: pkg/ must not depend on internal/", p.ImportPath, imp)
			}
		}
	}
	// Guard against a go list that lists nothing (a wrong pattern would
	// make this test pass whatever pkg/ imports).
	if seen == 0 {
		t.Fatal("go list found no package under pkg/")
	}
}
