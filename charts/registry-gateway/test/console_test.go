package charttest

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// consoleArgs turn the console on over the SQL backend and the admin API,
// which it needs, without single sign-on.
var consoleArgs = append([]string{
	"--set", "tokenserver.admin.enabled=true",
	"--set", "tokenserver.config.console.enabled=true",
}, sqlArgs...)

// The console example wires the web console up: the token service's
// configuration points the console at the gateway's in-cluster Service and
// shows customers `host`; the OIDC client secret is a file of the token
// service's Secret, mounted where the configuration names it; the admin
// Ingress routes /console; and the NetworkPolicies let the token service
// reach the gateway (also past gatewayFrom) and the OpenID provider.
func TestConsoleExample(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "examples/console-values.yaml")
	cfg := config(t, m, "tokenserver")
	con, _ := cfg["console"].(map[string]any)
	gwURL := "http://" + gwName + "." + namespace + ".svc:5000"
	if con["enabled"] != true || con["registry_url"] != gwURL || con["registry_host"] != "registry.vendor.example" {
		t.Errorf("console section %v, want registry_url %s and registry_host registry.vendor.example", con, gwURL)
	}
	if _, ok := cfg["admin"].(map[string]any)["listen"]; !ok {
		t.Errorf("no admin.listen: %v", cfg["admin"])
	}

	// The client secret: a file of the mounted Secret.
	oidc, _ := con["oidc"].(map[string]any)
	secretFile, _ := oidc["client_secret_file"].(string)
	d := m.deployments[tsName]
	if d == nil {
		t.Fatalf("no Deployment %s", tsName)
	}
	if !mountedFrom(d.Spec.Template.Spec, secretFile, "registry-gateway-keys") {
		t.Errorf("console.oidc.client_secret_file %q is not in the mounted Secret registry-gateway-keys", secretFile)
	}

	// Browsers reach the console through the admin Ingress.
	ing := m.ingresses[adminName]
	if ing == nil {
		t.Fatalf("no admin Ingress: %v", keys(m.ingresses))
	}
	var paths []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		paths = append(paths, p.Path+"->"+p.Backend.Service.Name)
	}
	if want := []string{"/console->" + adminName}; !slices.Equal(paths, want) {
		t.Errorf("admin Ingress paths %v, want %v (adminAPI: false)", paths, want)
	}

	if got, want := egressRules(m.policies[tsName]), []string{"dns", "ns=databases,pod=postgresql:5432", "pod=registry-gateway:5000", "0.0.0.0/0:443"}; !slices.Equal(got, want) {
		t.Errorf("token service egress %v, want %v", got, want)
	}
	if !egressToComponent(m.policies[tsName], "gateway", "5000") {
		t.Error("the token service's egress to 5000 is not to the gateway's pods")
	}
	if !ingressFromComponent(m.policies[gwName], "tokenserver", "http") {
		t.Errorf("the gateway admits gatewayFrom only, not the console: %+v", m.policies[gwName].Spec.Ingress)
	}
	// The migration Job reaches the database only, console or not.
	if got := egressRules(m.policies[migrateName]); !slices.Equal(got, []string{"dns", "ns=databases,pod=postgresql:5432"}) {
		t.Errorf("migration Job egress %v", got)
	}
}

// The console's NetworkPolicy rules are rendered only with the console on,
// the OpenID provider's only with console.oidc.issuer, a registry_url
// outside the cluster is networkPolicy.console.registry's, and a
// registry_url or registry_host given is kept.
func TestConsoleNetworkPolicy(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		name     string
		args     []string
		egress   []string // the token service's
		fromTS   bool     // the gateway admits the token service
		console  bool
		wantHost string
	}{
		{"off", sqlArgs, []string{"dns", "0.0.0.0/0:5432"}, false, false, ""},
		{"off, console egress set", append([]string{"--set-json", `networkPolicy.console.registry={"cidrs":["10.9.0.0/16"],"to":[],"ports":[443]}`}, sqlArgs...),
			[]string{"dns", "0.0.0.0/0:5432"}, false, false, ""},
		{"admin key only", consoleArgs, []string{"dns", "0.0.0.0/0:5432", "pod=registry-gateway:5000"}, true, true, "registry.example.com"},
		{"oidc", append([]string{"--set-json", oidcJSON("https://login.example.com")}, consoleArgs...),
			[]string{"dns", "0.0.0.0/0:5432", "pod=registry-gateway:5000", "0.0.0.0/0:443"}, true, true, "registry.example.com"},
		{"oidc in the cluster", append([]string{"--set-json", oidcJSON("http://dex.auth:5556"),
			"--set-json", `networkPolicy.console.oidc={"cidrs":[],"to":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"auth"}}}],"ports":[5556]}`}, consoleArgs...),
			[]string{"dns", "0.0.0.0/0:5432", "pod=registry-gateway:5000", "ns=auth:5556"}, true, true, "registry.example.com"},
		{"registry outside", append([]string{"--set", "tokenserver.config.console.registry_url=https://registry.example.com",
			"--set", "tokenserver.config.console.registry_host=pull.example.com",
			"--set-json", `networkPolicy.console.registry={"cidrs":["203.0.113.0/24"],"to":[],"ports":[443]}`}, consoleArgs...),
			[]string{"dns", "0.0.0.0/0:5432", "pod=registry-gateway:5000", "203.0.113.0/24:443"}, true, true, "pull.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, h, "", tc.args...)
			if got := egressRules(m.policies[tsName]); !slices.Equal(got, tc.egress) {
				t.Errorf("token service egress %v, want %v", got, tc.egress)
			}
			if got := ingressFromComponent(m.policies[gwName], "tokenserver", "http"); got != tc.fromTS {
				t.Errorf("the gateway admits the token service: %v, want %v", got, tc.fromTS)
			}
			con, _ := config(t, m, "tokenserver")["console"].(map[string]any)
			if !tc.console {
				if con != nil {
					t.Errorf("console section without the console: %v", con)
				}
				return
			}
			if con["registry_host"] != tc.wantHost {
				t.Errorf("console.registry_host %v, want %s", con["registry_host"], tc.wantHost)
			}
			if tc.name == "registry outside" && con["registry_url"] != "https://registry.example.com" {
				t.Errorf("console.registry_url %v: the one given was replaced", con["registry_url"])
			}
			// What the chart renders, the token service accepts.
			if out, err := checkConfig(t, "tokenserver", m.configMaps[tsName].Data["tokenserver.yaml"]); err != nil || strings.TrimSpace(out) != "ok" {
				t.Errorf("check-config: %v\n%s", err, out)
			}
		})
	}
}

// oidcJSON is a --set-json of a complete console.oidc section with issuer.
func oidcJSON(issuer string) string {
	return `tokenserver.config.console.oidc={"issuer":"` + issuer + `","client_id":"console","client_secret_file":"/etc/registry-gateway/secrets/oidc-client-secret",` +
		`"redirect_url":"https://console.example.com/console/sign-in/oidc/callback","allowed_email_domains":["example.com"]}`
}

// The admin Ingress routes /admin/v1 unless adminAPI is false, and
// /console with the console; with neither it fails.
func TestConsoleAdminIngress(t *testing.T) {
	h := helm(t)
	ingress := []string{"--set", "tokenserver.admin.ingress.enabled=true", "--set", "tokenserver.admin.ingress.host=admin.example.com",
		"--set-json", `tokenserver.admin.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"ingress-nginx"}}}]`}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"admin API only", append(append([]string{"--set", "tokenserver.admin.enabled=true"}, ingress...), sqlArgs...), []string{"/admin/v1"}},
		{"console and admin API", append(slices.Clone(ingress), consoleArgs...), []string{"/admin/v1", "/console"}},
		{"console only", append(append([]string{"--set", "tokenserver.admin.ingress.adminAPI=false"}, ingress...), consoleArgs...), []string{"/console"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, h, "", tc.args...)
			var got []string
			for _, p := range m.ingresses[adminName].Spec.Rules[0].HTTP.Paths {
				got = append(got, p.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("paths %v, want %v", got, tc.want)
			}
		})
	}
	args := append(append([]string{"--set", "tokenserver.admin.enabled=true", "--set", "tokenserver.admin.ingress.adminAPI=false"}, ingress...), sqlArgs...)
	if out, err := render(t, h, "", args...); err == nil || !strings.Contains(out, "tokenserver.admin.ingress.adminAPI: false leaves the Ingress nothing to route") {
		t.Errorf("adminAPI false without the console: %v\n%s", err, out)
	}
}

// The console without the admin API it is served on fails at render time,
// naming what to set.
func TestConsoleNeedsAdmin(t *testing.T) {
	h := helm(t)
	out, err := render(t, h, "", append([]string{"--set", "tokenserver.config.console.enabled=true"}, sqlArgs...)...)
	if err == nil || !strings.Contains(out, "tokenserver.config.console.enabled: the console is served on the admin listener; set tokenserver.admin.enabled") {
		t.Errorf("console without admin: %v\n%s", err, out)
	}
}

// mountedFrom reports whether path is a file of a volume of spec's first
// container that comes from the Secret secretName.
func mountedFrom(spec corev1.PodSpec, path, secretName string) bool {
	for _, vm := range spec.Containers[0].VolumeMounts {
		if !strings.HasPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.Secret != nil && v.Secret.SecretName == secretName {
				return true
			}
		}
	}
	return false
}

// egressToComponent reports whether np has an egress rule to the chart's
// pods of component on port.
func egressToComponent(np *networkingv1.NetworkPolicy, component, port string) bool {
	for _, r := range np.Spec.Egress {
		for _, p := range r.To {
			if p.PodSelector != nil && p.PodSelector.MatchLabels["app.kubernetes.io/component"] == component &&
				len(r.Ports) == 1 && r.Ports[0].Port.String() == port {
				return true
			}
		}
	}
	return false
}

// ingressFromComponent reports whether np admits the chart's pods of
// component on port.
func ingressFromComponent(np *networkingv1.NetworkPolicy, component, port string) bool {
	for _, r := range np.Spec.Ingress {
		for _, p := range r.From {
			if p.PodSelector != nil && p.PodSelector.MatchLabels["app.kubernetes.io/component"] == component &&
				len(r.Ports) == 1 && r.Ports[0].Port.String() == port {
				return true
			}
		}
	}
	return false
}

// The console example runs: its rendered configuration, with the pod's
// files (the Secret's signing key, DSN and OIDC client secret, the usage
// secret) under a temporary directory and a real PostgreSQL, passes
// check-config with the files loaded (the client secret is where the
// Secret is mounted), is migrated by the Job's command, and the real token
// service serves the console on the admin port: the sign-in page offers
// single sign-on, and an admin key made with `tokenserver accounts` signs
// the vendor in with a Secure session cookie (public_url is https, TLS
// ends at the Ingress).
func TestConsoleExampleRuns(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "examples/console-values.yaml")
	root := t.TempDir()
	local := func(s string) string { return strings.ReplaceAll(s, "/etc/registry-gateway/", root+"/") }
	db := accountstest.Shared(t).NewDatabase(t)
	write(t, local("/etc/registry-gateway/secrets/postgres.dsn"), db.DSN)
	write(t, local("/etc/registry-gateway/secrets/oidc-client-secret"), "client-secret\n")
	write(t, local("/etc/registry-gateway/usage/usage.secret"), strings.Repeat("ab", 32))
	ts := filepath.Join(bins, "tokenserver")
	if out, err := run(t, ts, "keygen", "-dir", local("/etc/registry-gateway/secrets")); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}

	// The pod's listeners, moved to free loopback ports.
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(local(m.configMaps[tsName].Data["tokenserver.yaml"])), &cfg); err != nil {
		t.Fatal(err)
	}
	listen, admin := "127.0.0.1:"+freePort(t, "127.0.0.1"), "127.0.0.1:"+freePort(t, "127.0.0.1")
	cfg["listen"] = listen
	cfg["admin"] = map[string]any{"listen": admin}
	setMetricsListen(cfg, "127.0.0.1:"+freePort(t, "127.0.0.1"))
	path := writeConfig(t, t.TempDir(), "tokenserver", cfg)

	if out, err := run(t, ts, "accounts", "migrate", "-config", path); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := run(t, ts, "check-config", path); err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("check-config with the files: %v\n%s", err, out)
	}
	// Without the client secret in the Secret, check-config names it.
	if err := os.Remove(local("/etc/registry-gateway/secrets/oidc-client-secret")); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, ts, "check-config", path); err == nil || !strings.Contains(out, "console.oidc.client_secret_file") {
		t.Errorf("check-config without the client secret: %v\n%s", err, out)
	}
	write(t, local("/etc/registry-gateway/secrets/oidc-client-secret"), "client-secret\n")

	out, err := run(t, ts, "accounts", "admin-key", "add", "support", "--scope", "write", "-config", path)
	if err != nil {
		t.Fatalf("admin-key add: %v\n%s", err, out)
	}
	var key string
	if k := regexp.MustCompile(`(?m)^\s+(rgwa_[A-Za-z0-9_-]{20,})$`).FindStringSubmatch(out); k != nil {
		key = k[1]
	}
	if key == "" {
		t.Fatalf("no admin key in:\n%s", out)
	}
	startService(t, "tokenserver", "http://"+listen, path, "serve")

	// A browser behind the Ingress: cookies carried by hand (they are
	// Secure, and this leg is plain HTTP, as from the controller).
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + admin + "/console/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `href="/console/sign-in/oidc"`) {
		t.Fatalf("sign-in page: %d\n%s", resp.StatusCode, body)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if csrf == nil {
		t.Fatalf("no CSRF token:\n%s", body)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/console/sign-in/key", strings.NewReader(url.Values{"csrf": {string(csrf[1])}, "key": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range resp.Cookies() {
		if !ck.Secure {
			t.Errorf("cookie %s is not Secure under an https public_url", ck.Name)
		}
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	signIn, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	signIn.Body.Close()
	var session *http.Cookie
	for _, ck := range signIn.Cookies() {
		if ck.Name == "rg_console" {
			session = ck
		}
	}
	if signIn.StatusCode != http.StatusSeeOther || signIn.Header.Get("Location") != "/console/vendor/" || session == nil || !session.Secure {
		t.Fatalf("admin key sign-in: %d to %q, session cookie %+v", signIn.StatusCode, signIn.Header.Get("Location"), session)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+admin+"/console/vendor/", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	code, page := do(t, c, req)
	if code != http.StatusOK || !strings.Contains(page, "support") {
		t.Errorf("vendor dashboard: %d\n%s", code, page)
	}
}

func do(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
