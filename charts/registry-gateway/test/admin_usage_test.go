package charttest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

const (
	adminName = tsName + "-admin"
	usageName = release + "-registry-gateway-usage"
	usageDir  = "/etc/registry-gateway/usage"
	usageFile = usageDir + "/usage.secret"
)

// sqlArgs switch the default values to the SQL licence backend, which the
// admin API and usage recording both need.
var sqlArgs = []string{
	"--set-json", `tokenserver.config.licenses={"http":null,"sql":{"driver":"postgres","dsn_file":"/etc/registry-gateway/secrets/postgres.dsn"}}`,
}

// adminFrom is the peer the combinations allow to the admin port.
const adminFrom = `[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"vendor-crm"}}}]`

// Each combination of the admin API and usage recording renders objects
// that decode strictly and configurations check-config accepts, with the
// admin port on a Service and NetworkPolicy rule of its own and the usage
// secret in both pods, and nothing of either when it is off.
func TestAdminAndUsageCombinations(t *testing.T) {
	h := helm(t)
	for _, admin := range []bool{false, true} {
		for _, usage := range []bool{false, true} {
			t.Run(fmt.Sprintf("admin=%v,usage=%v", admin, usage), func(t *testing.T) {
				args := append([]string{
					"--set", fmt.Sprintf("tokenserver.admin.enabled=%v", admin),
					"--set", fmt.Sprintf("usage.enabled=%v", usage),
					"--set-json", "tokenserver.admin.from=" + adminFrom,
				}, sqlArgs...)
				m := mustRender(t, h, "", args...)
				checkPolicies(t, m, "")
				for _, c := range []string{"tokenserver", "gateway"} {
					cfg := m.configMaps[release+"-registry-gateway-"+c].Data[c+".yaml"]
					if out, err := checkConfig(t, c, cfg); err != nil || strings.TrimSpace(out) != "ok" {
						t.Errorf("%s check-config: %v\n%s\nconfig:\n%s", c, err, out, cfg)
					}
				}
				checkAdmin(t, m, admin)
				checkUsage(t, m, usage, "secret", usageName)
			})
		}
	}
}

func checkAdmin(t *testing.T, m *manifest, on bool) {
	t.Helper()
	ts := config(t, m, "tokenserver")
	pod := m.deployments[tsName].Spec.Template
	ports := map[string]int32{}
	for _, p := range pod.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range m.deployments[gwName].Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "admin" {
			t.Errorf("gateway container has an admin port")
		}
	}
	// The customer Service never carries the admin port.
	for _, p := range m.services[tsName].Spec.Ports {
		if p.Name != "http" {
			t.Errorf("token service Service port %+v", p)
		}
	}
	rules := adminRules(m.policies[tsName])
	for _, r := range m.policies[gwName].Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port.String() == "admin" {
				t.Errorf("gateway NetworkPolicy opens an admin port")
			}
		}
	}
	if len(m.ingresses) != 0 {
		t.Errorf("Ingresses without asking: %v", keys(m.ingresses))
	}
	if !on {
		if _, ok := ts["admin"]; ok {
			t.Errorf("admin in the config while off: %v", ts["admin"])
		}
		if _, ok := ports["admin"]; ok || m.services[adminName] != nil || len(rules) != 0 {
			t.Errorf("admin off: container ports %v, Service %v, rules %+v", ports, m.services[adminName] != nil, rules)
		}
		return
	}
	if a, _ := ts["admin"].(map[string]any); a["listen"] != "0.0.0.0:5002" || len(a) != 1 {
		t.Errorf("admin %v", ts["admin"])
	}
	if ports["admin"] != 5002 || ports["http"] != 5001 {
		t.Errorf("token service container ports %v", ports)
	}
	svc := m.services[adminName]
	if svc == nil {
		t.Fatalf("no Service %s: %v", adminName, keys(m.services))
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "admin" ||
		svc.Spec.Ports[0].Port != 5002 || svc.Spec.Ports[0].TargetPort.String() != "admin" ||
		!subset(svc.Spec.Selector, pod.Labels) {
		t.Errorf("admin Service %+v", svc.Spec)
	}
	// admin.from only, on the admin port only.
	if len(rules) != 1 || len(rules[0].Ports) != 1 || len(rules[0].From) != 1 || rules[0].From[0].NamespaceSelector == nil ||
		rules[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "vendor-crm" || rules[0].From[0].PodSelector != nil {
		t.Errorf("admin rules %+v", rules)
	}
}

// The admin port's default peers are none: with tokenserver.admin.from
// empty no rule names the port, so nobody reaches it, not even the
// release's namespace (an empty `from` would admit everyone).
func TestAdminFailsClosed(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "", append([]string{"--set", "tokenserver.admin.enabled=true"}, sqlArgs...)...)
	if m.services[adminName] == nil {
		t.Fatal("no admin Service")
	}
	if rules := adminRules(m.policies[tsName]); len(rules) != 0 {
		t.Errorf("admin port open by default: %+v", rules)
	}
	for _, r := range m.policies[tsName].Spec.Ingress {
		if len(r.From) == 0 || len(r.Ports) == 0 {
			t.Errorf("a rule admitting every peer or port: %+v", r)
		}
	}
}

// adminRules are the NetworkPolicy's ingress rules naming the admin port;
// none may name another port or come without peers (which admits all).
func adminRules(np *networkingv1.NetworkPolicy) []networkingv1.NetworkPolicyIngressRule {
	var out []networkingv1.NetworkPolicyIngressRule
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port.String() == "admin" {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func checkUsage(t *testing.T, m *manifest, on bool, key, secretName string) {
	t.Helper()
	ts, gw := config(t, m, "tokenserver"), config(t, m, "gateway")
	sums := map[string]string{}
	for _, name := range []string{tsName, gwName} {
		pod := m.deployments[name].Spec.Template
		sums[name] = pod.Annotations["checksum/usage"]
		var vol *corev1.Volume
		for i, v := range pod.Spec.Volumes {
			if v.Name == "usage" {
				vol = &pod.Spec.Volumes[i]
			}
		}
		var mount *corev1.VolumeMount
		for i, vm := range pod.Spec.Containers[0].VolumeMounts {
			if vm.Name == "usage" {
				mount = &pod.Spec.Containers[0].VolumeMounts[i]
			}
		}
		if !on {
			if vol != nil || mount != nil || sums[name] != "" {
				t.Errorf("%s: usage off, but volume %+v, mount %+v, checksum %q", name, vol, mount, sums[name])
			}
			continue
		}
		if vol == nil || vol.Secret == nil || vol.Secret.SecretName != secretName || len(vol.Secret.Items) != 1 ||
			vol.Secret.Items[0].Key != key || vol.Secret.Items[0].Path != "usage.secret" ||
			vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode != 0o440 {
			t.Errorf("%s: usage volume %+v", name, vol)
		}
		if mount == nil || mount.MountPath != usageDir || !mount.ReadOnly {
			t.Errorf("%s: usage mount %+v", name, mount)
		}
		if sums[name] == "" {
			t.Errorf("%s: no checksum/usage", name)
		}
	}
	tu, _ := ts["usage"].(map[string]any)
	gu, _ := gw["usage"].(map[string]any)
	if !on {
		if tu != nil || gu != nil || m.secrets[usageName] != nil {
			t.Errorf("usage off: token service %v, gateway %v, Secret %v", tu, gu, keys(m.secrets))
		}
		return
	}
	if tu["secret_file"] != usageFile || gu["secret_file"] != usageFile {
		t.Errorf("secret_file: token service %v, gateway %v", tu, gu)
	}
	if want := "http://" + tsName + "." + namespace + ".svc:5001/internal/v1/usage"; gu["endpoint"] != want {
		t.Errorf("gateway usage.endpoint %v, want %s", gu["endpoint"], want)
	}
	if sums[tsName] != sums[gwName] {
		t.Errorf("the services' checksum/usage differ: %v", sums)
	}
	if secretName != usageName {
		if m.secrets[usageName] != nil {
			t.Errorf("a usage Secret rendered beside usage.existingSecret")
		}
		return
	}
	sec := m.secrets[usageName]
	if sec == nil {
		t.Fatalf("no Secret %s: %v", usageName, keys(m.secrets))
	}
	s := sec.Data["secret"]
	if len(sec.Data) != 1 || len(s) < 32 || strings.ContainsAny(string(s), " \t\r\n") {
		t.Errorf("usage secret: %d keys, %d bytes", len(sec.Data), len(s))
	}
	// The pods roll with the secret they share: the annotation is the hash
	// of the very Secret rendered, not of another random draw.
	sum := sha256.Sum256([]byte(base64.StdEncoding.EncodeToString(s)))
	if sums[tsName] != hex.EncodeToString(sum[:]) {
		t.Errorf("checksum/usage %s is not the rendered Secret's", sums[tsName])
	}
}

// The realistic installation: retention values reach the token service,
// the gateway's own usage keys stay, and the admin Ingress leads to the
// admin Service only, on a host of its own.
func TestAdminIngressAndUsageValues(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "ci/sql-admin-usage-values.yaml")
	{
		ing := m.ingresses[adminName]
		if ing == nil || len(m.ingresses) != 1 {
			t.Fatalf("Ingresses %v", keys(m.ingresses))
		}
		if ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt-prod" || *ing.Spec.IngressClassName != "nginx" {
			t.Errorf("admin Ingress %+v", ing.ObjectMeta)
		}
		if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "rg-registry-gateway-admin-tls" || ing.Spec.TLS[0].Hosts[0] != "registry-admin.vendor.example" {
			t.Errorf("admin Ingress tls %+v", ing.Spec.TLS)
		}
		if r := ing.Spec.Rules; len(r) != 1 || r[0].Host != "registry-admin.vendor.example" || len(r[0].HTTP.Paths) != 1 ||
			r[0].HTTP.Paths[0].Path != "/admin/v1" || r[0].HTTP.Paths[0].Backend.Service.Name != adminName ||
			r[0].HTTP.Paths[0].Backend.Service.Port.Name != "admin" {
			t.Errorf("admin Ingress rules %+v", r)
		}
	}
	if rules := adminRules(m.policies[tsName]); len(rules) != 1 || len(rules[0].From) != 2 {
		t.Errorf("admin rules %+v", rules)
	}
	tu := config(t, m, "tokenserver")["usage"].(map[string]any)
	if tu["retention"] != "720h" || tu["rollup_retention"] != "8760h" {
		t.Errorf("token service usage %v", tu)
	}
	if gu := config(t, m, "gateway")["usage"].(map[string]any); gu["client_address"] != "off" {
		t.Errorf("gateway usage %v", gu)
	}
	checkUsage(t, m, true, "secret", usageName)

	// The customers' Ingress, when on, is another object and never leads
	// to the admin port.
	m = mustRender(t, h, "ci/sql-admin-usage-values.yaml", "--set", "ingress.enabled=true")
	if ing := m.ingresses[gwName]; ing == nil || ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != gwName || len(m.ingresses) != 2 {
		t.Errorf("Ingresses %v", keys(m.ingresses))
	}
}

// usage.existingSecret: no Secret rendered, the named one and key mounted.
func TestUsageExistingSecret(t *testing.T) {
	h := helm(t)
	args := append([]string{"--set", "usage.enabled=true", "--set", "usage.existingSecret=vendor-usage",
		"--set", "usage.existingSecretKey=shared"}, sqlArgs...)
	m := mustRender(t, h, "", args...)
	if len(m.secrets) != 0 {
		t.Errorf("Secrets rendered: %v", keys(m.secrets))
	}
	checkUsage(t, m, true, "shared", "vendor-usage")
}

// The generated secret is random, never a constant of the chart: without
// the cluster (helm template) each rendering draws a new one, which is why
// installs applied from rendered manifests need usage.existingSecret.
func TestUsageSecretIsRandom(t *testing.T) {
	h := helm(t)
	args := append([]string{"--set", "usage.enabled=true"}, sqlArgs...)
	a := mustRender(t, h, "", args...).secrets[usageName]
	b := mustRender(t, h, "", args...).secrets[usageName]
	if a == nil || b == nil || string(a.Data["secret"]) == string(b.Data["secret"]) {
		t.Error("two renderings made the same usage secret")
	}
}

// Both features need licenses.sql, and the chart owns admin.listen and
// its port: rendering fails with a message naming the value to change.
func TestAdminAndUsageRefused(t *testing.T) {
	h := helm(t)
	ci := []string{"-f", "../ci/sql-admin-usage-values.yaml"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "tokenserver.admin.enabled=true"},
			"tokenserver.admin.enabled: the admin API administers the accounts of licenses.sql"},
		{[]string{"--set", "usage.enabled=true"},
			"usage.enabled: usage events are stored in the token service's account database; configure tokenserver.config.licenses.sql"},
		{[]string{"--set", "usage.enabled=true", "--set", "usage.existingSecret=x"},
			"usage.enabled: usage events are stored"},
		{[]string{"--set", "tokenserver.admin.enabled=true", "--set-json", "tokenserver.config.licenses.sql={}"},
			"tokenserver.admin.enabled: the admin API administers"},
		{[]string{"--set", "tokenserver.config.admin.listen=0.0.0.0:5002"},
			"tokenserver.config.admin: the chart sets admin.listen; use tokenserver.admin.enabled"},
		{append([]string{"--set", "tokenserver.admin.port=5001"}, ci...), "tokenserver.admin.port 5001: the admin API needs a port of its own"},
		{append([]string{"--set", "tokenserver.admin.port=9090"}, ci...), "not the metrics port"},
		{append([]string{"--set", "tokenserver.admin.ingress.host="}, ci...), "set tokenserver.admin.ingress.host"},
		{append([]string{"--set", "tokenserver.admin.ingress.host=registry.example.com"}, ci...), "a host of its own"},
		{append([]string{"--set", "tokenserver.admin.enabled=false"}, ci...), "tokenserver.admin.ingress.enabled: the Ingress leads to the admin API; set tokenserver.admin.enabled too"},
		{[]string{"--set", "tokenserver.admin.enable=true"}, "enable"},
		{[]string{"--set", "tokenserver.admin.port=0"}, "port"},
		{[]string{"--set", "usage.retention=90days"}, "retention"},
		{[]string{"--set", "usage.enable=true"}, "enable"},
		{[]string{"--set", "tokenserver.admin.from[0]=everyone"}, "from"},
	} {
		out, err := run(t, h, append([]string{"template", release, chartDir, "--namespace", namespace}, tc.args...)...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: err %v, output lacks %q:\n%s", tc.args, err, tc.want, out)
		}
	}
	// Off, the SQL backend is not needed and the admin keys may be null.
	mustRender(t, h, "", "--set-json", "tokenserver.config.admin=null")
}
