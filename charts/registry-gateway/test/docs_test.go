package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// docPages are the pages whose helm commands and YAML values blocks are
// run as printed, relative to the repository.
var docPages = []string{"docs/kubernetes.md", "charts/registry-gateway/README.md"}

// page is what a documentation page shows: its ```yaml blocks (each a
// values file) and its indented helm command lines, with the output a
// transcript line ("$ helm …") shows after it.
type page struct {
	values   []string
	commands []command
}

type command struct {
	line int
	args []string // after "helm"
	want []string // output lines shown after a "$ " line
}

func readPage(t *testing.T, rel string) page {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	var p page
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "```yaml" {
			var b strings.Builder
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				b.WriteString(lines[i] + "\n")
			}
			p.values = append(p.values, b.String())
			continue
		}
		code, ok := strings.CutPrefix(line, "    ")
		if !ok {
			continue
		}
		code = strings.TrimSpace(code)
		transcript := strings.HasPrefix(code, "$ ")
		code = strings.TrimPrefix(code, "$ ")
		if !strings.HasPrefix(code, "helm ") {
			continue
		}
		c := command{line: i + 1}
		for strings.HasSuffix(code, `\`) && i+1 < len(lines) {
			i++
			code = strings.TrimSuffix(code, `\`) + " " + strings.TrimSpace(lines[i])
		}
		if strings.ContainsAny(code, `"'$|;&<>`+"`") {
			t.Fatalf("%s:%d: %q: only plain words are run here", rel, c.line, code)
		}
		c.args = strings.Fields(code)[1:]
		if transcript {
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") && !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "$ ") {
				i++
				if w := strings.TrimSpace(lines[i]); w != "" {
					c.want = append(c.want, w)
				}
			}
		}
		p.commands = append(p.commands, c)
	}
	return p
}

// Every YAML values block of the pages renders objects that decode
// strictly into the API types, with configurations the services accept,
// and passes helm lint --strict.
func TestDocumentedValues(t *testing.T) {
	h := helm(t)
	var n int
	for _, rel := range docPages {
		for i, v := range readPage(t, rel).values {
			n++
			t.Run(fmt.Sprintf("%s#%d", filepath.Base(rel), i+1), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "values.yaml")
				write(t, path, v)
				abs, err := filepath.Abs(path)
				if err != nil {
					t.Fatal(err)
				}
				if out, err := run(t, h, "lint", "--strict", chartDir, "-f", abs); err != nil {
					t.Errorf("helm lint: %v\n%s\nvalues:\n%s", err, out, v)
				}
				out, err := run(t, h, "template", release, chartDir, "--namespace", namespace, "-f", abs)
				if err != nil {
					t.Fatalf("helm template: %v\n%s\nvalues:\n%s", err, out, v)
				}
				m := decode(t, out)
				for _, c := range []string{"tokenserver", "gateway"} {
					cfg := m.configMaps[release+"-registry-gateway-"+c].Data[c+".yaml"]
					if out, err := checkConfig(t, c, cfg); err != nil || strings.TrimSpace(out) != "ok" {
						t.Errorf("%s check-config: %v\n%s\nconfig:\n%s", c, err, out, cfg)
					}
				}
			})
		}
	}
	if n < 3 {
		t.Errorf("only %d YAML blocks found in %v", n, docPages)
	}
}

// The helm lines of the pages work as printed with the project's helm
// (no --kube-version), from the repository's root, with my-values.yaml
// the first YAML block of docs/kubernetes.md. lint, template and
// --dry-run=client lines run as they are; an install or upgrade that
// needs a cluster runs with --dry-run=client, which renders, checks the
// schema and stops there. A transcript's output lines must appear.
func TestDocumentedCommands(t *testing.T) {
	h := helm(t)
	myValues := filepath.Join(t.TempDir(), "my-values.yaml")
	write(t, myValues, readPage(t, docPages[0]).values[0])
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rel := range docPages {
		for _, c := range readPage(t, rel).commands {
			args := make([]string, 0, len(c.args)+1)
			for _, a := range c.args {
				if a == "my-values.yaml" {
					a = myValues
				}
				args = append(args, a)
			}
			switch args[0] {
			case "lint", "template":
			case "install", "upgrade":
				if !strings.Contains(strings.Join(args, " "), "--dry-run") {
					args = append(args, "--dry-run=client")
				}
			default:
				continue // registry login and the like: not about the chart
			}
			seen[args[0]] = true
			cmd := exec.Command(h, args...)
			cmd.Dir = root
			// No cluster: a kubeconfig of the developer's must not matter.
			cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(t.TempDir(), "none"))
			out, err := cmd.CombinedOutput()
			if len(c.want) > 0 {
				// A transcript of a refusal: the lines shown, in the output.
				for _, w := range c.want {
					if !strings.Contains(string(out), w) {
						t.Errorf("%s:%d: helm %s: output lacks %q:\n%s", rel, c.line, strings.Join(c.args, " "), w, out)
					}
				}
				continue
			}
			if err != nil {
				t.Errorf("%s:%d: helm %s: %v\n%s", rel, c.line, strings.Join(c.args, " "), err, out)
			}
		}
	}
	for _, sub := range []string{"lint", "template", "install"} {
		if !seen[sub] {
			t.Errorf("no `helm %s` line found in %v", sub, docPages)
		}
	}
}
