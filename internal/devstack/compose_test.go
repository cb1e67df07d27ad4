package devstack

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/acme/registry-gateway/internal/checkconfig"
	"github.com/acme/registry-gateway/internal/configfile"
	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
	"github.com/acme/registry-gateway/pkg/upstream/static"
)

// No Docker engine runs here, so compose.yaml is checked by loading it the
// way `docker compose` does (compose-go) and holding it against the
// configuration files it mounts.

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	return loadComposeEnv(t, nil)
}

// loadComposeEnv loads compose.yaml with env as the environment
// (KEY=VALUE), over .env's values, as docker compose does.
func loadComposeEnv(t *testing.T, env []string) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env), // HOST_UID and friends unset: the defaults
		cli.WithEnvFiles(), cli.WithDotEnv,
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func abs(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// configFlag returns the file a service is started with (-config FILE).
func configFlag(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	i := slices.Index(s.Command, "-config")
	if i < 0 || i+1 >= len(s.Command) {
		t.Fatalf("%s: command %q has no -config FILE", s.Name, s.Command)
	}
	return s.Command[i+1]
}

// mountOf returns the host path mounted read-only at the container path p,
// or at a directory above it (a file in a mounted directory).
func mountOf(t *testing.T, s types.ServiceConfig, p string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if v.Target == p || strings.HasPrefix(p, strings.TrimSuffix(v.Target, "/")+"/") {
			if !v.ReadOnly {
				t.Errorf("%s: %s is mounted read-write", s.Name, v.Target)
			}
			return filepath.Join(v.Source, strings.TrimPrefix(p, v.Target))
		}
	}
	t.Fatalf("%s: nothing mounted at %s", s.Name, p)
	return ""
}

// publishedPort checks that the container port is published on the host's
// loopback under the number want, and returns it.
func publishedPort(t *testing.T, s types.ServiceConfig, target, want string) string {
	t.Helper()
	for _, p := range s.Ports {
		if p.Target != parsePort(t, target) {
			continue
		}
		if p.HostIP != "127.0.0.1" {
			t.Errorf("%s: port %d published on %q, want 127.0.0.1 only", s.Name, p.Target, p.HostIP)
		}
		if p.Published != want {
			t.Errorf("%s: container port %s published as %s, want %s", s.Name, target, p.Published, want)
		}
		return p.Published
	}
	t.Fatalf("%s: port %s is not published (ports %+v)", s.Name, target, s.Ports)
	return ""
}

func parsePort(t *testing.T, s string) uint32 {
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q", s)
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkMetricsPort checks that a service's metrics.listen is a port of its
// own, reachable in the container, and published on the host's loopback
// only.
func checkMetricsPort(t *testing.T, s types.ServiceConfig, metricsListen, listenPort, published string) {
	t.Helper()
	host, p, err := net.SplitHostPort(metricsListen)
	if err != nil {
		t.Fatalf("%s: metrics.listen %q", s.Name, metricsListen)
	}
	if p == listenPort {
		t.Errorf("%s: metrics on the clients' port %s", s.Name, p)
	}
	if host != "0.0.0.0" {
		t.Errorf("%s: metrics.listen %s cannot be published from the container", s.Name, metricsListen)
	}
	publishedPort(t, s, p, published)
}

func checkHealth(t *testing.T, s types.ServiceConfig, listenPort string) {
	t.Helper()
	want := []string{"CMD", "/tokenserver", "healthcheck", "http://127.0.0.1:" + listenPort + "/healthz"}
	if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, want) {
		t.Errorf("%s: health check %v, want %q", s.Name, s.HealthCheck, want)
	}
}

// serviceConfig reads the configuration file of service s as the
// container does: its ${…} expanded (-expand-env) from the environment
// compose.yaml gives it.
func serviceConfig(t *testing.T, s types.ServiceConfig, path string) []byte {
	t.Helper()
	if !slices.Contains(s.Command, "-expand-env") {
		t.Errorf("%s: command %q without -expand-env: its configuration's ${…} would be read as text", s.Name, s.Command)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err = configfile.ExpandEnv(data, func(k string) (string, bool) {
		v, ok := s.Environment[k]
		if !ok || v == nil {
			return "", false
		}
		return *v, true
	})
	if err != nil {
		t.Fatalf("%s: %s: %v", s.Name, path, err)
	}
	return data
}

// composeConfigs are the two services' configurations as their
// containers read them.
func composeConfigs(t *testing.T, p *types.Project) (*tokenserver.Config, *gateway.Config) {
	t.Helper()
	ts, err := tokenserver.ParseConfig(serviceConfig(t, p.Services["tokenserver"], abs(t, "deploy/compose/tokenserver.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.ParseConfig(serviceConfig(t, p.Services["gateway"], abs(t, "deploy/compose/gateway.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	return ts, gw
}

// TestCompose checks the stack as .env sets it, and moved: other ports,
// another network and public URL, set in the environment alone (as a host
// whose bridge already uses 172.30.0.0/24 would).
func TestCompose(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		checkCompose(t, nil, map[string]string{"gw": "5000", "ts": "5001", "gwm": "9090", "tsm": "9091", "net": "172.30.0", "url": "http://localhost:5000"})
	})
	t.Run("moved", func(t *testing.T) {
		checkCompose(t, []string{"GATEWAY_PORT=6000", "TOKEN_PORT=6001", "GATEWAY_METRICS_PORT=6090", "TOKEN_METRICS_PORT=6091", "SUBNET_PREFIX=10.123.4"},
			map[string]string{"gw": "6000", "ts": "6001", "gwm": "6090", "tsm": "6091", "net": "10.123.4", "url": "http://localhost:6000"})
	})
	t.Run("public URL", func(t *testing.T) {
		checkCompose(t, []string{"GATEWAY_URL=https://registry.example.com"},
			map[string]string{"gw": "5000", "ts": "5001", "gwm": "9090", "tsm": "9091", "net": "172.30.0", "url": "https://registry.example.com"})
	})
}

// TestComposeValuesInOnePlace: no value .env sets is written in
// compose.yaml or in the configurations it mounts: each is set once.
func TestComposeValuesInOnePlace(t *testing.T) {
	env, err := os.ReadFile(abs(t, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	var files [][2]string
	for _, f := range []string{"compose.yaml", "deploy/compose/gateway.yaml", "deploy/compose/tokenserver.yaml"} {
		b, err := os.ReadFile(abs(t, f))
		if err != nil {
			t.Fatal(err)
		}
		// Comments may name the defaults.
		files = append(files, [2]string{f, regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(string(b), "")})
	}
	for line := range strings.Lines(string(env)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") || v == "" {
			continue
		}
		for _, f := range files {
			for _, pinned := range []string{"127.0.0.1:" + v + ":", "localhost:" + v, v + ".0/24", v + ".20"} {
				if strings.Contains(f[1], pinned) {
					t.Errorf("%s: %q pins %s=%s, which .env sets", f[0], pinned, k, v)
				}
			}
		}
	}
}

// checkCompose loads compose.yaml with env and checks it against want:
// the published ports (gw, ts, gwm, tsm), the network (net: its first
// three numbers) and the realm's base (url).
func checkCompose(t *testing.T, env []string, want map[string]string) {
	p := loadComposeEnv(t, env)
	names := p.ServiceNames()
	slices.Sort(names)
	if !slices.Equal(names, []string{"gateway", "registry", "seed", "tokenserver"}) {
		t.Fatalf("services %v", names)
	}
	ts, gw, reg, seed := p.Services["tokenserver"], p.Services["gateway"], p.Services["registry"], p.Services["seed"]

	// Every service: built from this Dockerfile's stage of its name (no
	// image pulled from a registry), non-root, read-only root filesystem.
	for _, s := range []types.ServiceConfig{ts, gw, seed, reg} {
		if s.Build == nil || s.Build.Target != s.Name || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
			t.Errorf("%s: build %+v", s.Name, s.Build)
		}
		if s.User == "0" || strings.HasPrefix(s.User, "0:") || strings.HasPrefix(s.User, "root") {
			t.Errorf("%s runs as %q", s.Name, s.User)
		}
		if !s.ReadOnly {
			t.Errorf("%s: root filesystem is writable", s.Name)
		}
	}
	for _, s := range []types.ServiceConfig{ts, gw} {
		if s.Build.Args["BUILD_TARGET"] == nil {
			t.Errorf("%s: no BUILD_TARGET build argument", s.Name)
		}
	}

	// The token service: its mounted configuration, listen port, health
	// check and files.
	tsPath := configFlag(t, ts)
	tsSource := mountOf(t, ts, tsPath)
	if tsSource != abs(t, "deploy/compose/tokenserver.yaml") {
		t.Errorf("tokenserver: %s is mounted from %s", tsPath, tsSource)
	}
	gwPath := configFlag(t, gw)
	gwSource := mountOf(t, gw, gwPath)
	if gwSource != abs(t, "deploy/compose/gateway.yaml") {
		t.Errorf("gateway: %s is mounted from %s", gwPath, gwSource)
	}
	tsCfg, gwCfg := composeConfigs(t, p)
	tsPort := port(t, tsCfg.Listen)
	publishedPort(t, ts, tsPort, want["ts"])
	checkHealth(t, ts, tsPort)
	checkMetricsPort(t, ts, tsCfg.Metrics.Listen, tsPort, want["tsm"])
	if host, _, _ := net.SplitHostPort(tsCfg.Listen); host != "0.0.0.0" {
		t.Errorf("tokenserver listens on %s: not reachable from the other containers", tsCfg.Listen)
	}
	if got := mountOf(t, ts, tsCfg.SigningKey); got != abs(t, "certs/"+tokencli.KeyFile) {
		t.Errorf("signing_key %s is %s on the host", tsCfg.SigningKey, got)
	}
	if got := mountOf(t, ts, tsCfg.SigningCert); got != abs(t, "certs/"+tokencli.CertFile) {
		t.Errorf("signing_cert %s is %s on the host", tsCfg.SigningCert, got)
	}
	licFile := tsCfg.Licenses.Backends["file"].(*filebackend.Config).Path
	if got := mountOf(t, ts, licFile); got != abs(t, "deploy/licenses.yaml") {
		t.Errorf("licenses.file %s is %s on the host", licFile, got)
	}

	// The gateway.
	gwPort := port(t, gwCfg.Listen)
	publishedPort(t, gw, gwPort, want["gw"])
	checkHealth(t, gw, gwPort)
	checkMetricsPort(t, gw, gwCfg.Metrics.Listen, gwPort, want["gwm"])
	// Clients on the host follow the realm: the published port, the name
	// localhost (crane refuses loopback IP realms), /token forwarded; or
	// GATEWAY_URL.
	if gwCfg.Realm != want["url"]+"/token" {
		t.Errorf("realm %s, want %s/token", gwCfg.Realm, want["url"])
	}
	// The token service by service name and its configured port.
	for key, raw := range map[string]string{"keys.jwks_url": gwCfg.Keys.JWKSURL, "token_endpoint": gwCfg.TokenEndpoint} {
		u, err := url.Parse(raw)
		if err != nil || u.Host != "tokenserver:"+tsPort {
			t.Errorf("%s %q: want host tokenserver:%s", key, raw, tsPort)
		}
	}
	if gwCfg.Service != tsCfg.Service || gwCfg.Issuer != tsCfg.Issuer {
		t.Errorf("gateway service/issuer %s/%s, token service %s/%s", gwCfg.Service, gwCfg.Issuer, tsCfg.Service, tsCfg.Issuer)
	}
	if d, ok := gw.DependsOn["tokenserver"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("gateway depends_on tokenserver: %+v (it fetches the JWKS at start)", gw.DependsOn)
	}
	// So that `up --wait` returns when pulls work (and waits for the
	// one-shot seed job instead of failing on its exit).
	if d, ok := gw.DependsOn["seed"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("gateway depends_on seed: %+v", gw.DependsOn)
	}
	pw, ok := gwCfg.Upstream.Providers["static"].(*static.Config)
	if !ok {
		t.Fatal("gateway upstream is not static")
	}
	if got := mountOf(t, gw, pw.PasswordFile); got != abs(t, "deploy/upstream.password") {
		t.Errorf("password_file %s is %s on the host", pw.PasswordFile, got)
	}
	// Only the gateway's address is a trusted proxy of the token service.
	addr := gw.Networks["stack"]
	if addr == nil || addr.Ipv4Address == "" {
		t.Fatalf("gateway has no fixed address: %+v", gw.Networks)
	}
	ip := netip.MustParseAddr(addr.Ipv4Address)
	if ip.String() != want["net"]+".20" {
		t.Errorf("gateway address %s, want %s.20", ip, want["net"])
	}
	if n := p.Networks["stack"].Ipam.Config; len(n) != 1 || n[0].Subnet != want["net"]+".0/24" {
		t.Errorf("stack network %+v, want %s.0/24", n, want["net"])
	}
	if !slices.ContainsFunc(tsCfg.TrustedProxies, func(p string) bool {
		pre, err := netip.ParsePrefix(p)
		if err != nil {
			a, err := netip.ParseAddr(p)
			return err == nil && a == ip
		}
		return pre.Contains(ip)
	}) {
		t.Errorf("trusted_proxies %v lack the gateway's %s", tsCfg.TrustedProxies, ip)
	}

	// The upstream: the service the gateway's upstream.url names, with the
	// committed htpasswd; the seed job pushes to the same place.
	up, _ := url.Parse(gwCfg.Upstream.URL)
	if up.Hostname() != "registry" || up.Port() != "5000" {
		t.Errorf("upstream.url %s: want the registry service's port 5000", gwCfg.Upstream.URL)
	}
	if i := slices.Index(reg.Command, "-htpasswd"); i < 0 || mountOf(t, reg, reg.Command[i+1]) != abs(t, "deploy/upstream.htpasswd") {
		t.Errorf("registry htpasswd: command %q", reg.Command)
	}
	checkHealth(t, reg, up.Port())
	if len(reg.Ports) != 0 {
		t.Errorf("the upstream is published (%v): clients could bypass the gateway", reg.Ports)
	}
	if i := slices.Index(seed.Command, "-registry"); i < 0 || seed.Command[i+1] != gwCfg.Upstream.URL {
		t.Errorf("seed pushes to %v, the gateway reads %s", seed.Command, gwCfg.Upstream.URL)
	}
	if i := slices.Index(seed.Command, "-password-file"); i < 0 || mountOf(t, seed, seed.Command[i+1]) != abs(t, "deploy/upstream.password") {
		t.Errorf("seed password file: %v", seed.Command)
	}
}

// TestComposeBuildTarget: BUILD_TARGET picks the Dockerfile path of every
// image; without it the release path.
func TestComposeBuildTarget(t *testing.T) {
	for env, want := range map[string]string{"": "release", "offline": "offline", "release": "release"} {
		var vars []string
		if env != "" {
			vars = []string{"BUILD_TARGET=" + env}
		}
		p := loadComposeEnv(t, vars)
		for _, s := range p.Services {
			if got := s.Build.Args["BUILD_TARGET"]; got == nil || *got != want {
				t.Errorf("BUILD_TARGET=%q: %s builds with %v, want %s", env, s.Name, got, want)
			}
		}
	}
}

// TestComposeConfigsMatchLocal: the compose variants differ from the local
// demo configuration in addresses and paths only.
func TestComposeConfigsMatchLocal(t *testing.T) {
	local, err := tokenserver.LoadConfig(abs(t, "deploy/tokenserver.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	comp, cg := composeConfigs(t, loadCompose(t))
	if local.Issuer != comp.Issuer || local.Service != comp.Service || local.TokenTTL != comp.TokenTTL ||
		local.RefreshTokenTTL != comp.RefreshTokenTTL || local.Licenses.CacheTTL != comp.Licenses.CacheTTL {
		t.Errorf("token service configurations differ:\nlocal   %+v\ncompose %+v", local, comp)
	}
	lg, err := gateway.LoadConfig(abs(t, "deploy/gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if lg.Realm != cg.Realm || lg.Service != cg.Service || lg.Issuer != cg.Issuer || lg.Leeway != cg.Leeway ||
		lg.Upstream.Providers["static"].(*static.Config).Username != cg.Upstream.Providers["static"].(*static.Config).Username {
		t.Errorf("gateway configurations differ:\nlocal   %+v\ncompose %+v", lg, cg)
	}
}

// TestDockerfile holds the Dockerfile to what compose.yaml and the brief
// expect of it; no engine is here to build it.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(abs(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"ARG GO_VERSION=1.26", "ARG BUILD_TARGET=release",
		// The release path.
		"FROM golang:${GO_VERSION} AS build-release",
		"CGO_ENABLED=0 go build -trimpath",
		"FROM gcr.io/distroless/static-debian12:nonroot AS base-release",
		// The offline path: nothing but scratch and the build context.
		"FROM scratch AS build-offline", "FROM scratch AS base-offline",
		"COPY bin/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
		"FROM build-${BUILD_TARGET} AS build", "FROM base-${BUILD_TARGET} AS base",
		"USER 65532:65532",
		"COPY --from=build /out/tokenserver /tokenserver",
		"FROM base AS gateway", "FROM base AS tokenserver", "FROM base AS seed", "FROM base AS registry",
		`ENTRYPOINT ["/gateway"]`, `CMD ["-config", "/etc/registry-gateway/gateway.yaml"]`,
		`ENTRYPOINT ["/tokenserver"]`, `CMD ["serve", "-config", "/etc/registry-gateway/tokenserver.yaml"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// BuildKit would pull the frontend an offline build cannot reach.
	if regexp.MustCompile(`(?im)^#\s*syntax\s*=`).MatchString(df) {
		t.Error("Dockerfile has a syntax directive: the offline build would pull docker/dockerfile")
	}
	// Every binary the build names exists as a command, and the offline
	// path copies the same binaries from bin/.
	var built, copied []string
	for _, m := range regexp.MustCompile(`\./cmd/([a-z]+)`).FindAllStringSubmatch(df, -1) {
		built = append(built, m[1])
		if _, err := os.Stat(abs(t, "cmd/"+m[1])); err != nil {
			t.Errorf("Dockerfile builds %s: %v", m[0], err)
		}
	}
	for _, m := range regexp.MustCompile(`\bbin/([a-z]+) `).FindAllStringSubmatch(df, -1) {
		copied = append(copied, m[1])
	}
	if len(built) != 4 || !slices.Equal(built, copied) {
		t.Errorf("release path builds %v, offline path copies %v", built, copied)
	}
	// The compose command paths are the images' defaults too.
	p := loadCompose(t)
	for _, s := range []string{"gateway", "tokenserver"} {
		if !strings.Contains(df, `"`+configFlag(t, p.Services[s])+`"`) {
			t.Errorf("%s: compose's -config %s is not the image default", s, configFlag(t, p.Services[s]))
		}
	}

	ignore, err := os.ReadFile(abs(t, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	rules := strings.Fields(string(ignore))
	if !slices.Contains(rules, "certs") {
		t.Error(".dockerignore lets certs/ (the signing key) into the build context")
	}
	// bin/ holds only what the offline path copies (bench binaries and
	// the like stay out).
	if !slices.Contains(rules, "bin/*") {
		t.Error(".dockerignore lets all of bin/ into the build context")
	}
	for _, f := range append(copied, "ca-certificates.crt") {
		if !slices.Contains(rules, "!bin/"+f) {
			t.Errorf(".dockerignore keeps bin/%s, which the offline path copies, out of the build context", f)
		}
	}
}

// TestComposeCheckConfig: `check-config -expand-env` of each compose
// configuration, in the environment compose.yaml gives its container (with
// .env's values), passes, as an operator would run it before `make
// compose-up`; without -expand-env the references are read as text and
// refused, which is why the flag exists. -skip-files: the files it names
// are paths inside the containers.
func TestComposeCheckConfig(t *testing.T) {
	p := loadCompose(t)
	for _, tc := range []struct {
		service, file string
		check         checkconfig.Checker
		literal       string // what a check without -expand-env names
	}{
		{"gateway", "deploy/compose/gateway.yaml", gateway.CheckConfig, "realm"},
		{"tokenserver", "deploy/compose/tokenserver.yaml", tokenserver.CheckConfig, "trusted_proxies"},
	} {
		t.Run(tc.service, func(t *testing.T) {
			s := p.Services[tc.service]
			if len(s.Environment) == 0 {
				t.Fatalf("%s: no environment in compose.yaml", tc.service)
			}
			for k, v := range s.Environment {
				if v == nil {
					t.Fatalf("%s: %s has no value", tc.service, k)
				}
				t.Setenv(k, *v)
			}
			path := abs(t, tc.file)
			var out, errb strings.Builder
			if code := checkconfig.Run(tc.service, []string{"-skip-files", "-expand-env", path}, &out, &errb, tc.check); code != 0 || strings.TrimSpace(out.String()) != "ok" {
				t.Errorf("check-config -expand-env: exit %d: %s%s", code, out.String(), errb.String())
			}
			out.Reset()
			errb.Reset()
			if code := checkconfig.Run(tc.service, []string{"-skip-files", path}, &out, &errb, tc.check); code != 1 || !strings.Contains(errb.String(), tc.literal) {
				t.Errorf("check-config without -expand-env: exit %d, want 1 naming %s: %s", code, tc.literal, errb.String())
			}
		})
	}
}
