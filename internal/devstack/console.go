package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// The web console of the demo (`make run`, SQL accounts): served by the
// token service on its admin listener, reading the demo gateway, with an
// admin key for the vendor's sign-in and a one-time link for the demo
// customer, both printed in the banner.

// Console is what the banner says about the console.
type Console struct {
	// URL is the console's address.
	URL string
	// AdminKey signs the vendor in (kept in AdminKeyFile, mode 0600, so
	// that a rerun reuses it and the accounts CLI can use it with
	// --admin-key-file).
	AdminKey, AdminKeyFile string
	// CustomerLink signs the demo customer in, once.
	CustomerLink string
}

// configureConsole points the console at the bound addresses: the gateway
// it reads, the host customers type, its own public address; the gateway's
// refusals link its help page.
func configureConsole(ts *tokenserver.Config, gw *gateway.Config, st *Stack, adminHost, scheme string) {
	c := &ts.Console
	c.RegistryURL = st.GatewayURL
	c.RegistryHost = st.GatewayHost
	c.PublicURL = scheme + "://" + adminHost + "/console/"
	if st.TLS != nil {
		c.RegistryCAFile = st.TLS.CACert
	}
	if gw.CustomerHelpURL == "" {
		gw.CustomerHelpURL = c.HelpURL()
	}
}

// consoleSignIns makes the vendor's admin key (once per data directory)
// and a one-time sign-in link for the demo customer, through the accounts
// CLI as a vendor would.
func consoleSignIns(ctx context.Context, config, keyFile, consoleURL string) (*Console, error) {
	cli := func(args ...string) ([]byte, int, string) {
		var out, errb bytes.Buffer
		args = append(append([]string{"accounts"}, args...), "-config", config, "--actor", "make-run", "--json")
		code := tokencli.Run(ctx, args, strings.NewReader(""), &out, &errb, tokenserver.AccountsConfig)
		return out.Bytes(), code, strings.TrimSpace(errb.String())
	}
	c := &Console{URL: consoleURL, AdminKeyFile: keyFile}
	b, err := os.ReadFile(keyFile)
	switch {
	case err == nil:
		c.AdminKey = strings.TrimSpace(string(b))
	case errors.Is(err, fs.ErrNotExist):
		// A name of its own per data directory: admin key names stay
		// taken once revoked.
		name := "make-run-" + time.Now().UTC().Format("20060102-150405")
		out, code, msg := cli("admin-key", "add", name, "--scope", "write")
		if code != 0 {
			return nil, fmt.Errorf("accounts admin-key add: %s", msg)
		}
		var k struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
			return nil, fmt.Errorf("accounts admin-key add: unexpected answer %q", out)
		}
		if err := os.MkdirAll(filepath.Dir(keyFile), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyFile, []byte(k.Key+"\n"), 0o600); err != nil {
			return nil, err
		}
		c.AdminKey = k.Key
	default:
		return nil, err
	}
	out, code, msg := cli("sign-in-link", DemoUser, "--console-url", consoleURL)
	if code == 3 {
		// No demo account in this database (a vendor's own): no link.
		return c, nil
	}
	if code != 0 {
		return nil, fmt.Errorf("accounts sign-in-link: %s", msg)
	}
	var link struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(out, &link); err != nil || link.URL == "" {
		return nil, fmt.Errorf("accounts sign-in-link: unexpected answer %q", out)
	}
	c.CustomerLink = link.URL
	return c, nil
}

// writeConsole prints the console's part of the banner: where it is and
// how the vendor and the demo customer sign in.
func (s *Stack) writeConsole(w io.Writer) {
	if s.Console == nil {
		if s.AccountsConfig == "" {
			fmt.Fprintf(w, "\n  console  the web console needs SQL accounts: make run LICENSES=sql\n")
		}
		return
	}
	c := s.Console
	fmt.Fprintf(w, "\nweb console %s\n", c.URL)
	fmt.Fprintf(w, "  vendor    sign in with the admin key %s\n", c.AdminKey)
	fmt.Fprintf(w, "            (kept in %s; the admin API takes it too: bin/tokenserver accounts list --server %s --admin-key-file %s)\n", c.AdminKeyFile, s.AdminURL, c.AdminKeyFile)
	if c.CustomerLink != "" {
		fmt.Fprintf(w, "  customer  %s signs in once with %s\n", DemoUser, c.CustomerLink)
		fmt.Fprintf(w, "            (or with the e-mail and API token above)\n")
	}
	fmt.Fprintf(w, "  a new customer, with a sign-in link to hand them:\n")
	fmt.Fprintf(w, "    bin/tokenserver accounts add customer@example.com --channels stable -config %s\n", s.AccountsConfig)
	fmt.Fprintf(w, "    bin/tokenserver accounts sign-in-link customer@example.com --console-url %s -config %s\n", c.URL, s.AccountsConfig)
}
