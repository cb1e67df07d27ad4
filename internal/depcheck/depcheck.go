// Package depcheck finds which packages of a Go module depend on which,
// from `go list -deps`, so that a test can hold the module's walls: no
// package on one side of a wall may depend, directly or through others, on
// a package on the other side. Only what is compiled into a program counts:
// a package's _test.go files may cross a wall.
//
// It follows go-containerregistry's internal/depcheck, with `go list`
// instead of golang.org/x/tools/go/packages (no dependency to add).
package depcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Graph is the import graph of a module's packages (tests excluded).
type Graph struct {
	// Module is the module path, e.g. github.com/acme/registry-gateway.
	Module string
	// imports maps each package of the module to the packages of the
	// module it imports directly.
	imports map[string][]string
}

// listed is what Load reads of each package `go list -json` prints.
type listed struct {
	ImportPath string
	Imports    []string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

// Load lists every package of the module in dir (`go list -deps ./...`,
// with the go command of PATH) and their imports. A package that does not
// load is an error: a wall checked on a partial graph proves nothing.
func Load(ctx context.Context, dir string) (*Graph, error) {
	mod, err := goCmd(ctx, dir, "list", "-m")
	if err != nil {
		return nil, err
	}
	module := strings.TrimSpace(string(mod))
	out, err := goCmd(ctx, dir, "list", "-e", "-deps", "-json=ImportPath,Imports,Module,Error", "./...")
	if err != nil {
		return nil, err
	}
	g := &Graph{Module: module, imports: map[string][]string{}}
	var errs []error
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Module == nil || p.Module.Path != module {
			continue
		}
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("%s: %s", p.ImportPath, p.Error.Err))
		}
		var own []string
		for _, imp := range p.Imports {
			if g.in(imp) {
				own = append(own, imp)
			}
		}
		g.imports[p.ImportPath] = own
	}
	if len(g.imports) == 0 {
		errs = append(errs, fmt.Errorf("go list found no package of %s", module))
	}
	return g, errors.Join(errs...)
}

func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// in reports whether the import path is the module or below it.
func (g *Graph) in(path string) bool {
	return path == g.Module || strings.HasPrefix(path, g.Module+"/")
}

// Packages lists the module's packages, sorted.
func (g *Graph) Packages() []string {
	var out []string
	for p := range g.imports {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Match reports whether the package (import path) matches one of
// patterns, each relative to the module root: "internal/gateway" is that
// package only, "internal/license/..." is it and every package below it,
// "..." is every package of the module.
func (g *Graph) Match(pkg string, patterns []string) bool {
	if !g.in(pkg) {
		return false
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, g.Module), "/")
	for _, pat := range patterns {
		if pat == "..." {
			return true
		}
		if base, ok := strings.CutSuffix(pat, "/..."); ok {
			if rel == base || strings.HasPrefix(rel, base+"/") {
				return true
			}
		} else if rel == pat {
			return true
		}
	}
	return false
}

// Path is the shortest chain of imports from the package from to a package
// that matches to (patterns as in Match), from first; nil if there is none.
func (g *Graph) Path(from string, to []string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != from && g.Match(p, to) {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, imp := range g.imports[p] {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

// Wall is a rule of the module's layout: no package matching From (and not
// Except) depends on a package matching To. Patterns are as in Match.
type Wall struct {
	Name   string
	From   []string
	Except []string
	To     []string
}

// Crossing is a package that crosses a wall, with the chain of imports
// that does it.
type Crossing struct {
	Package string
	Chain   []string
}

func (c Crossing) String() string {
	return strings.Join(c.Chain, " -> ")
}

// Check lists every package that crosses the wall, and how many packages
// the wall's From side holds (a wall over no package proves nothing).
func (g *Graph) Check(w Wall) (crossings []Crossing, from int) {
	for _, p := range g.Packages() {
		if !g.Match(p, w.From) || g.Match(p, w.Except) {
			continue
		}
		from++
		if chain := g.Path(p, w.To); chain != nil {
			crossings = append(crossings, Crossing{Package: p, Chain: chain})
		}
	}
	return crossings, from
}
