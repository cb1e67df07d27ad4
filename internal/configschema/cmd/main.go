// Command cmd writes the services' configuration schemas into the Helm
// chart's values schema (`make chart-schema`):
//
//	go run ./internal/configschema/cmd [FILE]
//
// FILE defaults to charts/registry-gateway/values.schema.json. Only the
// subtrees tokenserver.config and gateway.config are generated; the rest
// of the file is the chart's own and is kept (rewritten with sorted keys).
package main

import (
	"fmt"
	"os"

	"github.com/acme/registry-gateway/internal/configschema"
)

func main() {
	path := "charts/registry-gateway/values.schema.json"
	switch len(os.Args) {
	case 1:
	case 2:
		path = os.Args[1]
	default:
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/configschema/cmd [values.schema.json]")
		os.Exit(2)
	}
	if err := update(path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func update(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := configschema.UpdateChart(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}
