// Command probe stands in for a service in the SBOM tests: a small Go
// binary whose build information lists two modules of go.mod.
package main

import (
	"fmt"

	"github.com/package-url/packageurl-go"
	"go.yaml.in/yaml/v3"
)

func main() {
	b, _ := yaml.Marshal(map[string]string{"purl": packageurl.NewPackageURL("golang", "", "probe", "v0", nil, "").ToString()})
	fmt.Print(string(b))
}
