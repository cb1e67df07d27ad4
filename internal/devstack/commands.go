package devstack

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/acme/registry-gateway/internal/devcert"
)

// CraneModule is what `crane` stands for in the printed commands where the
// crane CLI is not installed.
const CraneModule = "github.com/google/go-containerregistry/cmd/crane@v0.22.1"

// Command is one command line printed for the user, exactly as printed.
type Command struct {
	// Tool is the program: docker, skopeo, crane or tokenserver.
	Tool string
	// Line is a shell command line; words are separated by single spaces,
	// so tests can run it word by word (up to a pipe). Every path in it is
	// absolute, so that it works pasted from any directory; a path with
	// characters a shell splits on is single-quoted (shellWord).
	Line string
	// Refused is true for the command that must fail: the demo account
	// holds no licence for the beta channel.
	Refused bool
}

// Commands are the client commands that work against the stack, and the
// ones that are refused. Over HTTPS they trust the development CA: docker
// through /etc/docker/certs.d, skopeo with --cert-dir (the directory holds
// only ca.crt), crane through SSL_CERT_FILE, curl and tokenserver with
// --cacert.
func (s *Stack) Commands() []Command {
	h := s.GatewayHost
	token := s.DemoToken
	creds := DemoUser + ":" + token
	ok, beta := h+"/"+LicensedRepo, h+"/"+UnlicensedRepo
	jwks := s.JWKSURL
	skopeoTLS, skopeoSrcTLS := "--tls-verify=false", "--src-tls-verify=false"
	craneEnv, craneTLS, curlTLS, tokenTLS := "", " --insecure", "", ""
	var trust []Command
	if s.TLS != nil {
		ca, caDir := shellWord(s.TLS.CACert), shellWord(filepath.Dir(s.TLS.CACert))
		skopeoTLS, skopeoSrcTLS = "--cert-dir "+caDir, "--src-cert-dir "+caDir
		craneEnv, craneTLS, curlTLS, tokenTLS = "SSL_CERT_FILE="+ca+" ", "", " --cacert "+ca, " --cacert "+ca
		certsd := "/etc/docker/certs.d/" + h
		sudo := "sudo "
		if os.Geteuid() == 0 {
			sudo = "" // root needs none, and minimal systems have no sudo
		}
		trust = []Command{
			{Tool: "docker", Line: sudo + "mkdir -p " + certsd},
			{Tool: "docker", Line: sudo + "cp " + ca + " " + certsd + "/ca.crt"},
		}
	}
	tokenserver := s.tokenserver()
	tokenCmd := "TOKENSERVER_PASSWORD=" + token + " " + tokenserver + " token --registry " + s.GatewayURL + " -u " + DemoUser + tokenTLS
	crane := craneEnv + "crane"
	return append(append(trust, []Command{
		{Tool: "docker", Line: "printf " + token + " | docker login " + h + " -u " + DemoUser + " --password-stdin"},
		{Tool: "docker", Line: "docker pull " + ok + ":1.0"},
		{Tool: "docker", Line: "docker pull " + beta + ":1.0", Refused: true},

		{Tool: "skopeo", Line: "skopeo inspect " + skopeoTLS + " --creds " + creds + " docker://" + ok + ":1.0"},
		{Tool: "skopeo", Line: "skopeo list-tags " + skopeoTLS + " --creds " + creds + " docker://" + ok},
		{Tool: "skopeo", Line: "skopeo copy " + skopeoSrcTLS + " --src-creds " + creds + " docker://" + ok + ":1.0 oci:" + shellWord(filepath.Join(filepath.Dir(s.DataDir), "hello-oci")) + ":1.0"},
		{Tool: "skopeo", Line: "skopeo inspect " + skopeoTLS + " --creds " + creds + " docker://" + beta + ":1.0", Refused: true},

		{Tool: "crane", Line: "crane auth login " + h + " -u " + DemoUser + " -p " + token},
		{Tool: "crane", Line: crane + " ls" + craneTLS + " " + ok},
		{Tool: "crane", Line: crane + " manifest" + craneTLS + " " + ok + ":1.0"},
		{Tool: "crane", Line: crane + " export" + craneTLS + " --platform linux/amd64 " + ok + ":1.0 - | tar -xO " + DemoFile},
		{Tool: "crane", Line: crane + " catalog" + craneTLS + " " + h},
		{Tool: "crane", Line: crane + " ls" + craneTLS + " " + beta, Refused: true},

		{Tool: "curl", Line: "curl -fsS" + curlTLS + " -u " + creds + " " + s.Realm + "?service=" + s.Service},

		{Tool: "tokenserver", Line: tokenCmd + " --scope repository:" + LicensedRepo + ":pull --jwks " + jwks},
		{Tool: "tokenserver", Line: tokenCmd + " --scope repository:" + UnlicensedRepo + ":pull", Refused: true},
		{Tool: "tokenserver", Line: tokenCmd + " --scope repository:" + LicensedRepo + ":pull --raw | " + tokenserver + " inspect - --jwks " + jwks + tokenTLS},
	}...), s.accountsCommands()...)
}

// tokenserver is the built token service command, by its absolute path.
func (s *Stack) tokenserver() string {
	return shellWord(filepath.Join(s.BinDir, "tokenserver"))
}

// shellWord returns path as one shell word: as it is when no shell would
// split or expand it (the usual case, and the form tests run word by
// word), else single-quoted.
func shellWord(path string) string {
	if path != "" && strings.IndexFunc(path, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,@%", r))
	}) < 0 {
		return path
	}
	return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
}

// WriteBanner prints where everything is and the commands to try.
func (s *Stack) WriteBanner(out io.Writer) {
	// One write: whoever reads the output (a terminal, a test waiting for
	// the banner) sees it whole, never the first lines alone.
	var buf bytes.Buffer
	w := &buf
	defer func() { _, _ = out.Write(buf.Bytes()) }()
	fmt.Fprintf(w, "\nThe registry gateway demo stack is up. Ctrl-C stops it.\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  gateway\t%s\tclients connect here; /token is forwarded to the token service\n", s.GatewayURL)
	fmt.Fprintf(tw, "  token service\t%s\tJWKS %s\n", s.TokenServerURL, s.JWKSURL)
	fmt.Fprintf(tw, "  upstream\t%s\tdistribution registry, htpasswd user %s, storage %s\n", s.UpstreamURL, s.upstreamUser, s.DataDir)
	fmt.Fprintf(tw, "  metrics\t%s/metrics\tthe gateway's (and /debug/pprof/); operators only, never on the clients' port\n", s.GatewayMetricsURL)
	fmt.Fprintf(tw, "  \t%s/metrics\tthe token service's (and /debug/pprof/)\n", s.TokenServerMetricsURL)
	tw.Flush()
	fmt.Fprintf(w, "\n  account  %s, API token %s: licensed for the stable channel only\n", DemoUser, s.DemoToken)
	if len(s.Images) > 0 {
		fmt.Fprintf(w, "  images   %s and %s, tags %s\n", LicensedRepo, UnlicensedRepo, strings.Join(DemoTags, ", "))
	}
	if s.Keys != nil {
		fmt.Fprintf(w, "  keys     generated %s (kid %s)\n", strings.Join(s.Keys.Files, ", "), s.Keys.KeyID)
	}
	if s.TLS != nil {
		fmt.Fprintf(w, "  HTTPS    development CA %s, certificate %s (%s)\n", s.TLS.CACert, s.TLS.ServerCert, strings.Join(devcert.ServerHosts, ", "))
		if len(s.TLS.Generated) > 0 {
			fmt.Fprintf(w, "           generated %s\n", strings.Join(s.TLS.Generated, ", "))
		}
	}

	s.writeConsole(w)

	docker := "docker (localhost registries may use plain http):"
	if s.TLS != nil {
		docker = "docker (trust the development CA for this host:port first; dockerd reads certs.d at each connection, no restart):"
	}
	sections := []struct{ tool, title string }{
		{"docker", docker},
		{"skopeo", "skopeo:"},
		{"crane", "crane (not installed? alias crane='go run " + CraneModule + "'):"},
		{"curl", "curl (the token docker login gets):"},
		{"tokenserver", "operator tools (" + s.BinDir + " is built by make run and make build):"},
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
