// The `token` command: its flags, their checks, and which output to write.
// The flow itself is in tokenflow.go, the output in tokenreport.go.

package tokencli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/acme/registry-gateway/pkg/auth"
)

// tokenOptions are the token command's flags.
type tokenOptions struct {
	username, password string
	scopes             multiFlag
	realm, registry    string
	service            string
	post               bool
	insecure           bool
	plainHTTP          bool
	asJSON, raw        bool
	keys               keyOptions
}

// token is `tokenserver token`: a client's login flow against a registry
// or a token endpoint, and what came back checked and shown.
func (e *env) token(ctx context.Context, args []string) int {
	fs := e.newFlagSet("token", "-u USER [-p PASSWORD|-] [--scope SCOPE]... (--registry URL | --realm URL) [--jwks URL]")
	var o tokenOptions
	fs.StringVar(&o.username, "u", "", "user name (the customer's e-mail)")
	fs.StringVar(&o.username, "username", "", "same as -u")
	fs.StringVar(&o.password, "p", "", "password (API token); - reads it from stdin; default $"+passwordEnv)
	fs.StringVar(&o.password, "password", "", "same as -p")
	fs.Var(&o.scopes, "scope", "scope to ask for, e.g. repository:stable/hello:pull (repeatable; none = what `docker login` asks)")
	fs.StringVar(&o.registry, "registry", "", "registry (gateway) URL or host: read the realm from its /v2/ challenge, then test the token on it")
	fs.StringVar(&o.realm, "realm", "", "token endpoint URL, to skip the challenge")
	fs.StringVar(&o.service, "service", "", "service parameter (default: from the challenge)")
	fs.BoolVar(&o.post, "post", false, "ask like containerd: POST grant_type=password instead of GET")
	fs.BoolVar(&o.insecure, "insecure", false, "skip TLS certificate verification")
	fs.BoolVar(&o.plainHTTP, "plain-http", false, "use http:// for a --registry given without scheme")
	fs.BoolVar(&o.asJSON, "json", false, "print JSON for scripts")
	fs.BoolVar(&o.raw, "raw", false, "print only the token (for piping into inspect)")
	o.keys.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "tokenserver token: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if (o.realm == "") == (o.registry == "") {
		fmt.Fprintln(e.stderr, "tokenserver token: give one of --registry URL or --realm URL")
		return exitUsage
	}
	if _, err := auth.ParseScopes(o.scopes); err != nil {
		fmt.Fprintf(e.stderr, "tokenserver token: %v\n", err)
		return exitUsage
	}
	if err := e.readPassword(&o); err != nil {
		fmt.Fprintf(e.stderr, "tokenserver token: %v\n", err)
		return exitUsage
	}
	if o.insecure && o.keys.cacert != "" {
		fmt.Fprintln(e.stderr, "tokenserver token: give --cacert or --insecure, not both")
		return exitUsage
	}
	if err := e.trustCA(o.keys.cacert); err != nil {
		fmt.Fprintf(e.stderr, "tokenserver token: %v\n", err)
		return exitUsage
	}
	if o.insecure {
		c := *e.client
		c.Transport = &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // asked for with --insecure
		}
		e.client = &c
	}

	res, code := e.runFlow(ctx, o)
	switch {
	case o.raw:
		if res.Token == nil {
			fmt.Fprintf(e.stderr, "tokenserver token: no token: %s %s\n", res.Error, res.Hint)
			return code
		}
		fmt.Fprintln(e.stdout, res.Token.d.raw)
	case o.asJSON:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	default:
		e.writeTokenText(res)
	}
	return code
}
