package devstack

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// CraneModule is what `crane` stands for in the printed commands where the
// crane CLI is not installed.
const CraneModule = "github.com/google/go-containerregistry/cmd/crane@v0.22.1"

// Command is one command line printed for the user, exactly as printed.
type Command struct {
	// Tool is the program: docker, skopeo, crane or tokenserver.
	Tool string
	// Line is a shell command line; words are separated by single spaces
	// and need no quoting, so tests can run it word by word (up to a pipe).
	Line string
	// Refused is true for the command that must fail: the demo account
	// holds no licence for the beta channel.
	Refused bool
}

// Commands are the client commands that work against the stack, and the
// ones that are refused.
func (s *Stack) Commands() []Command {
	h := s.GatewayHost
	token := s.DemoToken
	creds := DemoUser + ":" + token
	ok, beta := h+"/"+LicensedRepo, h+"/"+UnlicensedRepo
	jwks := s.JWKSURL
	tokenCmd := "TOKENSERVER_PASSWORD=" + token + " bin/tokenserver token --registry " + s.GatewayURL + " -u " + DemoUser
	return append([]Command{
		{Tool: "docker", Line: "printf " + token + " | docker login " + h + " -u " + DemoUser + " --password-stdin"},
		{Tool: "docker", Line: "docker pull " + ok + ":1.0"},
		{Tool: "docker", Line: "docker pull " + beta + ":1.0", Refused: true},

		{Tool: "skopeo", Line: "skopeo inspect --tls-verify=false --creds " + creds + " docker://" + ok + ":1.0"},
		{Tool: "skopeo", Line: "skopeo list-tags --tls-verify=false --creds " + creds + " docker://" + ok},
		{Tool: "skopeo", Line: "skopeo copy --src-tls-verify=false --src-creds " + creds + " docker://" + ok + ":1.0 oci:data/hello-oci:1.0"},
		{Tool: "skopeo", Line: "skopeo inspect --tls-verify=false --creds " + creds + " docker://" + beta + ":1.0", Refused: true},

		{Tool: "crane", Line: "crane auth login " + h + " -u " + DemoUser + " -p " + token},
		{Tool: "crane", Line: "crane ls --insecure " + ok},
		{Tool: "crane", Line: "crane manifest --insecure " + ok + ":1.0"},
		{Tool: "crane", Line: "crane export --insecure --platform linux/amd64 " + ok + ":1.0 - | tar -xO " + DemoFile},
		{Tool: "crane", Line: "crane catalog --insecure " + h},
		{Tool: "crane", Line: "crane ls --insecure " + beta, Refused: true},

		{Tool: "tokenserver", Line: tokenCmd + " --scope repository:" + LicensedRepo + ":pull --jwks " + jwks},
		{Tool: "tokenserver", Line: tokenCmd + " --scope repository:" + UnlicensedRepo + ":pull", Refused: true},
		{Tool: "tokenserver", Line: tokenCmd + " --scope repository:" + LicensedRepo + ":pull --raw | bin/tokenserver inspect - --jwks " + jwks},
	}, s.accountsCommands()...)
}

// WriteBanner prints where everything is and the commands to try.
func (s *Stack) WriteBanner(w io.Writer) {
	fmt.Fprintf(w, "\nThe registry gateway demo stack is up. Ctrl-C stops it.\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  gateway\t%s\tclients connect here; /token is forwarded to the token service\n", s.GatewayURL)
	fmt.Fprintf(tw, "  token service\t%s\tJWKS %s\n", s.TokenServerURL, s.JWKSURL)
	fmt.Fprintf(tw, "  upstream\t%s\tdistribution registry, htpasswd user %s, storage %s\n", s.UpstreamURL, s.upstreamUser, s.DataDir)
	tw.Flush()
	fmt.Fprintf(w, "\n  account  %s, API token %s: licensed for the stable channel only\n", DemoUser, s.DemoToken)
	if len(s.Images) > 0 {
		fmt.Fprintf(w, "  images   %s and %s, tags %s\n", LicensedRepo, UnlicensedRepo, strings.Join(DemoTags, ", "))
	}
	if s.Keys != nil {
		fmt.Fprintf(w, "  keys     generated %s (kid %s)\n", strings.Join(s.Keys.Files, ", "), s.Keys.KeyID)
	}

	sections := []struct{ tool, title string }{
		{"docker", "docker (localhost registries may use plain http):"},
		{"skopeo", "skopeo:"},
		{"crane", "crane (not installed? alias crane='go run " + CraneModule + "'):"},
		{"tokenserver", "operator tools (bin/ is built by make run and make build):"},
		{"accounts", "customer accounts (licenses.sql in " + s.AccountsConfig + "):"},
	}
	for _, sec := range sections {
		if sec.tool == "accounts" && s.AccountsConfig == "" {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", sec.title)
		for _, c := range s.Commands() {
			if c.Tool != sec.tool {
				continue
			}
			if c.Refused {
				fmt.Fprintf(w, "  # refused: no licence for the beta channel\n")
			}
			fmt.Fprintf(w, "  %s\n", c.Line)
		}
	}
	fmt.Fprintln(w)
}
