package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ChartName is the chart's name (Chart.yaml), the last path element of its
// OCI reference.
const ChartName = "registry-gateway"

// ChartRepository is where below the registry the chart is pushed: helm
// push appends the chart's name, so the chart is
// oci://REGISTRY/charts/registry-gateway:<chart version>.
const ChartRepository = "charts"

// copyTree copies the regular files and directories of src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		default:
			return nil // symlinks and the like: helm packages neither
		}
	})
}

// setImageRegistry rewrites the value of image.registry in a chart's
// values.yaml in place, keeping every other byte (the comments are the
// chart's documentation), so that the packaged chart pulls the images of
// the release from the registry they were pushed to.
func setImageRegistry(valuesFile, registry string) error {
	b, err := os.ReadFile(valuesFile)
	if err != nil {
		return err
	}
	node, err := findImageRegistry(b)
	if err != nil {
		return fmt.Errorf("%s: %w", valuesFile, err)
	}
	lines := bytes.Split(b, []byte("\n"))
	i := node.Line - 1
	line := lines[i]
	// The value runs from its column to the end of the line (a comment
	// after it would be dropped: the chart has none there).
	lines[i] = append(line[:node.Column-1:node.Column-1], []byte(strconv.Quote(registry))...)
	out := bytes.Join(lines, []byte("\n"))
	if n, err := findImageRegistry(out); err != nil || n.Value != registry {
		return fmt.Errorf("%s: image.registry not set to %q after the edit", valuesFile, registry)
	}
	return os.WriteFile(valuesFile, out, 0o644)
}

// findImageRegistry is the scalar node of image.registry.
func findImageRegistry(values []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 {
		return nil, errors.New("not one YAML document")
	}
	image := mappingValue(doc.Content[0], "image")
	reg := mappingValue(image, "registry")
	if reg == nil || reg.Kind != yaml.ScalarNode || reg.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return nil, errors.New("no one-line image.registry value to set")
	}
	return reg, nil
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// helmRun runs helm with args; its output goes into the error when it fails.
func helmRun(ctx context.Context, helm string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// packageChart packages the chart at chartDir (a copy under work, with
// image.registry set) as chartVersion with appVersion, the images' tag, into
// outDir and returns the .tgz.
func packageChart(ctx context.Context, helm, chartDir, work, outDir, chartVersion, appVersion, imageRegistry string) (string, error) {
	dir := filepath.Join(work, ChartName)
	if err := copyTree(chartDir, dir); err != nil {
		return "", fmt.Errorf("copy the chart: %w", err)
	}
	if err := setImageRegistry(filepath.Join(dir, "values.yaml"), imageRegistry); err != nil {
		return "", err
	}
	if _, err := helmRun(ctx, helm, "package", dir, "--version", chartVersion, "--app-version", appVersion, "--destination", outDir); err != nil {
		return "", err
	}
	tgz := filepath.Join(outDir, fmt.Sprintf("%s-%s.tgz", ChartName, chartVersion))
	if _, err := os.Stat(tgz); err != nil {
		return "", fmt.Errorf("helm package wrote no %s: %w", tgz, err)
	}
	return tgz, nil
}

// pushChart pushes the packaged chart to oci://<registry>/charts. helm
// reads the logins of registryConfig (a docker config.json: the same
// logins the images are pushed with) when it is set.
func pushChart(ctx context.Context, helm, tgz, registry, registryConfig string, plainHTTP bool) error {
	args := []string{"push", tgz, "oci://" + registry + "/" + ChartRepository}
	if plainHTTP {
		args = append(args, "--plain-http")
	}
	if registryConfig != "" {
		args = append(args, "--registry-config", registryConfig)
	}
	_, err := helmRun(ctx, helm, args...)
	return err
}
