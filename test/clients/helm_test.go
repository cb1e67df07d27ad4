package clients

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/devstack"
)

// TestHelm: the vendor pushes a chart as OCI to the stable and beta
// channels upstream; the customer logs in to the gateway with helm v4 and
// pulls and renders the stable chart from it (`helm pull oci://`, `helm
// template oci://`, `helm show chart oci://`); beta is refused with the
// channel named.
func TestHelm(t *testing.T) {
	helm := tool(t, "helm.sh", "REQUIRE_HELM")
	st := startStack(t, false)
	dir := t.TempDir()
	env := func(registryConfig string) []string {
		return clientEnv(dir, "HELM_CACHE_HOME="+filepath.Join(dir, "cache"), "HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
			"HELM_DATA_HOME="+filepath.Join(dir, "data"), "HELM_REGISTRY_CONFIG="+filepath.Join(dir, registryConfig))
	}
	vendor, customer := env("vendor.json"), env("customer.json")

	chart := filepath.Join(dir, "hello-chart")
	for name, content := range map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: hello-chart\nversion: 0.1.0\ndescription: registry gateway demo chart\n",
		"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hello\n" +
			"data:\n  greeting: {{ .Values.greeting | quote }}\n",
		"values.yaml": "greeting: Hello from the stable channel\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(chart, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(chart, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, dir, vendor, "", helm, "package", chart, "-d", dir)
	pkg := filepath.Join(dir, "hello-chart-0.1.0.tgz")
	for _, channel := range []string{"stable", "beta"} {
		mustRun(t, dir, vendor, "", helm, "push", pkg, "oci://"+st.upstream+"/"+channel+"/charts", "--plain-http",
			"--username", upstreamUser, "--password", st.upstreamPassword)
	}

	mustRun(t, dir, customer, devstack.DemoToken, helm, "registry", "login", st.GatewayHost, "--plain-http",
		"--username", devstack.DemoUser, "--password-stdin")
	stable := "oci://" + st.GatewayHost + "/stable/charts/hello-chart"
	pulled := filepath.Join(dir, "pulled")
	if err := os.Mkdir(pulled, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, customer, "", helm, "pull", stable, "--version", "0.1.0", "--plain-http", "-d", pulled)
	want, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(pulled, "hello-chart-0.1.0.tgz")); err != nil || string(got) != string(want) {
		t.Errorf("helm pull: %v, or not the pushed package", err)
	}
	out := mustRun(t, dir, customer, "", helm, "template", "demo", stable, "--version", "0.1.0", "--plain-http")
	if !strings.Contains(out, "name: demo-hello") || !strings.Contains(out, `greeting: "Hello from the stable channel"`) {
		t.Errorf("helm template:\n%s", out)
	}
	out = mustRun(t, dir, customer, "", helm, "show", "chart", stable, "--version", "0.1.0", "--plain-http")
	if !strings.Contains(out, "name: hello-chart") {
		t.Errorf("helm show chart:\n%s", out)
	}

	beta := "oci://" + st.GatewayHost + "/beta/charts/hello-chart"
	refused(t, true, dir, customer, helm, "pull", beta, "--version", "0.1.0", "--plain-http", "-d", pulled)
	refused(t, true, dir, customer, helm, "template", "demo", beta, "--version", "0.1.0", "--plain-http")
}
