package static_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/acme/registry-gateway/pkg/upstream"
	"github.com/acme/registry-gateway/pkg/upstream/static"
)

// The upstream.static section names a password file, read on each fetch so
// that replacing the file rotates the password.
func Example() {
	dir, _ := os.MkdirTemp("", "static")
	defer os.RemoveAll(dir)
	pw := filepath.Join(dir, "upstream.password")
	_ = os.WriteFile(pw, []byte("s3cret\n"), 0o600)

	var cfg upstream.Config = &static.Config{Username: "puller", PasswordFile: pw}
	p, _ := cfg.Provider(context.Background(), upstream.Env{URL: "https://registry.example.com"})
	c, err := p.Fetch(context.Background())
	fmt.Println(c.Username, c.ProxyEndpoint, c.ExpiresAt.IsZero(), err)
	fmt.Println(c) // never the password
	// Output:
	// puller https://registry.example.com true <nil>
	// upstream.Credential{user="puller" password=<redacted> expires=never endpoint="https://registry.example.com"}
}
