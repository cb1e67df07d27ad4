package static

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/pkg/upstream"
)

func TestFetch(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "password")
	p := &Provider{Username: "puller", PasswordFile: path, ProxyEndpoint: "https://registry.example"}
	for _, tc := range []struct {
		content string // "-" for no file
		want    string // "" for an error
	}{
		{"-", ""},
		{"first\n", "first"},
		{"second", "second"}, // rewritten: the file is reread
		{"third\r\n", "third"},
		{"  spaced pw \n\n", "  spaced pw "},
		{"\n", ""},
		{"", ""},
	} {
		if tc.content != "-" {
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c, err := p.Fetch(context.Background())
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("file %q: no error, got %v", tc.content, c)
		case tc.want != "" && (err != nil || c.Password != tc.want):
			t.Errorf("file %q: got password %q, %v; want %q", tc.content, c.Password, err, tc.want)
		case tc.want != "" && (c.Username != "puller" || !c.ExpiresAt.IsZero() || c.ProxyEndpoint != "https://registry.example"):
			t.Errorf("file %q: got %v", tc.content, c)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if errs := (&Config{}).Validate(); len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "username:") ||
		!strings.HasPrefix(errs[1].Error(), "password_file:") {
		t.Errorf("Validate of an empty section = %v", errs)
	}
	path := filepath.Join(t.TempDir(), "password")
	c := &Config{Username: "puller", PasswordFile: path}
	if err := c.CheckFiles(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "password_file:") {
		t.Errorf("CheckFiles without the file = %v", err)
	}
	if err := os.WriteFile(path, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("Validate = %v", errs)
	}
	if err := c.CheckFiles(context.Background()); err != nil {
		t.Errorf("CheckFiles = %v", err)
	}
	p, err := c.Provider(context.Background(), upstream.Env{URL: "https://registry.example"})
	if err != nil {
		t.Fatal(err)
	}
	if cred, err := p.Fetch(context.Background()); err != nil || cred.Password != "pw" || cred.ProxyEndpoint != "https://registry.example" {
		t.Errorf("Fetch = %v, %v", cred, err)
	}
	u, _ := url.Parse("https://cdn.example/blob?Expires=1796126400&Signature=s")
	if exp, ok := p.RedirectExpiry(u); !ok || exp.Unix() != 1796126400 {
		t.Errorf("RedirectExpiry = %v, %v", exp, ok)
	}
}
