package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// SQLConfig is the token service configuration of `make run LICENSES=sql`:
// the sql licence backend on SQLite under data/.
const SQLConfig = "deploy/tokenserver-sql.yaml"

// DemoChannels are the channels `make run LICENSES=sql` puts in the
// catalogue, with their descriptions: those of LicensedRepo and
// UnlicensedRepo.
var DemoChannels = [][2]string{
	{"stable", "released builds"},
	{"beta", "previews"},
}

// SQLDemoAccount sets up the account database of the token service
// configuration at config the way a vendor would, through the accounts
// CLI: migrate, create the channels of DemoChannels (kept when they exist
// from an earlier run), then add the demo account holding the stable
// channel (or, when it exists, rotate its token). It returns the demo
// account's new API token.
func SQLDemoAccount(ctx context.Context, config string, log io.Writer) (string, error) {
	cli := func(args ...string) ([]byte, int, string) {
		var out, errb bytes.Buffer
		args = append(append([]string{"accounts"}, args...), "-config", config, "--actor", "make-run")
		code := tokencli.Run(ctx, args, strings.NewReader(""), &out, &errb, tokenserver.AccountsConfig)
		return out.Bytes(), code, strings.TrimSpace(errb.String())
	}
	out, code, msg := cli("migrate")
	if code != 0 {
		return "", fmt.Errorf("accounts migrate: %s", msg)
	}
	fmt.Fprintf(log, "devstack: tokenserver accounts migrate: %s", out)
	for _, ch := range DemoChannels {
		// 4: it exists from an earlier run.
		if _, code, msg := cli("channels", "add", ch[0], "--description", ch[1]); code != 0 && code != 4 {
			return "", fmt.Errorf("accounts channels add: %s", msg)
		}
	}
	var created struct {
		Token string `json:"token"`
	}
	out, code, msg = cli("add", DemoUser, "--channels", "stable", "--json")
	if code == 4 { // exists from an earlier run: its old token was printed then
		out, code, msg = cli("token", "rotate", DemoUser, "--json")
	}
	if code != 0 {
		return "", fmt.Errorf("accounts add: %s", msg)
	}
	if err := json.Unmarshal(out, &created); err != nil || created.Token == "" {
		return "", fmt.Errorf("accounts add: unexpected answer %q", out)
	}
	return created.Token, nil
}

// accountsCommands are the accounts commands the banner suggests.
func (s *Stack) accountsCommands() []Command {
	if s.AccountsConfig == "" {
		return nil
	}
	// The configuration's own relative paths (dsn: data/accounts.db, the
	// signing key) are relative to the working directory, as for the
	// services: the line changes to the repository root first, so that it
	// opens the stack's database from wherever it is pasted.
	ts := "cd " + shellWord(s.Root) + " && " + s.tokenserver()
	c := " -config " + shellWord(s.AccountsConfig)
	return []Command{
		{Tool: "accounts", Line: ts + " accounts list" + c},
		{Tool: "accounts", Line: ts + " accounts channels list" + c},
		{Tool: "accounts", Line: ts + " accounts show " + DemoUser + c},
		{Tool: "accounts", Line: ts + " accounts add customer@example.com --channels stable,beta --expires 2027-06-30" + c},
		{Tool: "accounts", Line: ts + " accounts grant " + DemoUser + " beta" + c},
		{Tool: "accounts", Line: ts + " accounts token rotate " + DemoUser + c},
		{Tool: "accounts", Line: ts + " accounts audit" + c},
		{Tool: "accounts", Line: ts + " usage --since 1d" + c},
	}
}
