package tokencli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Kubernetes pull secrets: kubelet reads only username, password and auth
// of a .dockerconfigjson entry and ignores identitytoken. What `docker login`
// stores for this registry is an identity token (the refresh token) with an
// empty password, so a Secret made from ~/.docker/config.json cannot pull.
// pull-secret writes the Secret kubelet can use: the customer's username and
// API token.

// SecretTypeDockerConfigJSON is the Secret type kubelet reads pull
// credentials from.
const SecretTypeDockerConfigJSON = "kubernetes.io/dockerconfigjson"

// PullSecret is a kubernetes.io/dockerconfigjson Secret, in the shape of
// the Kubernetes API object (kubectl apply -f takes it as JSON).
type PullSecret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   PullSecretMeta    `json:"metadata"`
	Type       string            `json:"type"`
	Data       map[string][]byte `json:"data"`
}

// PullSecretMeta is the Secret's metadata.
type PullSecretMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// DockerConfigJSON is the .dockerconfigjson document. Only the fields
// kubelet reads: there is deliberately no identitytoken.
type DockerConfigJSON struct {
	Auths map[string]DockerAuth `json:"auths"`
}

// DockerAuth is one registry's entry.
type DockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}

var (
	// RFC 1123 subdomain (Secret names) and label (namespaces).
	dnsSubdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dnsLabelRe     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// host or host:port, as kubelet matches it against image names.
	registryHostRe = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)
)

// NewPullSecret builds the Secret for username and apiToken at registry
// (host[:port]); every problem is reported at once.
func NewPullSecret(name, namespace, registry, username, apiToken string) (*PullSecret, error) {
	var errs []error
	if len(name) > 253 || !dnsSubdomainRe.MatchString(name) {
		errs = append(errs, fmt.Errorf("-name %q is not a valid Secret name (lower-case letters, digits, '-' and '.')", name))
	}
	if namespace != "" && (len(namespace) > 63 || !dnsLabelRe.MatchString(namespace)) {
		errs = append(errs, fmt.Errorf("-namespace %q is not a valid namespace", namespace))
	}
	if !registryHostRe.MatchString(registry) {
		errs = append(errs, fmt.Errorf("-registry %q: want the registry's host[:port] as in image names (no scheme, no path)", registry))
	}
	switch {
	case username == "":
		errs = append(errs, errors.New("-username is required (the customer's e-mail)"))
	case strings.Contains(username, ":"):
		errs = append(errs, fmt.Errorf("-username %q must not contain ':'", username))
	}
	switch {
	case apiToken == "":
		errs = append(errs, fmt.Errorf("no API token: pipe it on stdin or set %s", passwordEnv))
	case strings.HasPrefix(apiToken, "rt1."):
		// What `docker login` stored as identitytoken: kubelet cannot use
		// it as a password and the pull would fail with "unauthorized".
		errs = append(errs, errors.New("that is a refresh (identity) token from docker's config.json, not the API token; kubelet needs the API token"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg := DockerConfigJSON{Auths: map[string]DockerAuth{registry: {
		Username: username,
		Password: apiToken,
		Auth:     base64.StdEncoding.EncodeToString([]byte(username + ":" + apiToken)),
	}}}
	doc, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return &PullSecret{
		APIVersion: "v1",
		Kind:       "Secret",
		Metadata:   PullSecretMeta{Name: name, Namespace: namespace},
		Type:       SecretTypeDockerConfigJSON,
		Data:       map[string][]byte{".dockerconfigjson": doc},
	}, nil
}

func (e *env) pullSecret(args []string) int {
	fs := e.newFlagSet("pull-secret", "-registry HOST -username USER [-name regcred] [-namespace NS] < api-token")
	name := fs.String("name", "regcred", "name of the Secret")
	namespace := fs.String("namespace", "", "namespace of the Secret (default: kubectl's current one)")
	registry := fs.String("registry", "", "the registry host customers pull from, as in image names (registry.example.com)")
	username := fs.String("username", "", "the customer's username (e-mail)")
	fs.StringVar(username, "u", "", "short for -username")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	if len(pos) > 0 {
		// Most likely the API token: refuse it, it would be in the shell
		// history and the process list.
		fmt.Fprintf(e.stderr, "tokenserver pull-secret: unexpected argument; the API token is read from stdin or $%s, never from the command line\n", passwordEnv)
		return exitUsage
	}
	token := e.getenv(passwordEnv)
	if token == "" {
		if token, err = e.readStdinLine("API token"); err != nil {
			fmt.Fprintf(e.stderr, "tokenserver pull-secret: %v (pipe the API token on stdin or set %s)\n", err, passwordEnv)
			return exitUsage
		}
	}
	secret, err := NewPullSecret(*name, *namespace, *registry, *username, token)
	if err != nil {
		fmt.Fprintf(e.stderr, "tokenserver pull-secret:\n%s\n", indentLines(err.Error()))
		return exitUsage
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(secret); err != nil {
		fmt.Fprintf(e.stderr, "tokenserver pull-secret: %v\n", err)
		return exitFail
	}
	return exitOK
}

func indentLines(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
