package charttest

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	tsName      = release + "-registry-gateway-tokenserver"
	gwName      = release + "-registry-gateway-gateway"
	migrateName = release + "-registry-gateway-migrate"
)

func mustRender(t *testing.T, h, values string, extra ...string) *manifest {
	t.Helper()
	out, err := render(t, h, values, extra...)
	if err != nil {
		t.Fatalf("helm template %s %v: %v\n%s", values, extra, err, out)
	}
	return decode(t, out)
}

// config decodes a rendered service configuration.
func config(t *testing.T, m *manifest, service string) map[string]any {
	t.Helper()
	name := tsName
	if service == "gateway" {
		name = gwName
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(m.configMaps[name].Data[service+".yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// By default the two services agree on issuer and service, and the gateway
// finds the token service by its in-cluster Service name and port.
func TestDefaultsWireTheServicesTogether(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "")
	ts, gw := config(t, m, "tokenserver"), config(t, m, "gateway")
	if ts["service"] != "registry.example.com" || gw["service"] != ts["service"] || gw["issuer"] != ts["issuer"] {
		t.Errorf("service/issuer: tokenserver %v %v, gateway %v %v", ts["service"], ts["issuer"], gw["service"], gw["issuer"])
	}
	if gw["realm"] != "https://registry.example.com/token" {
		t.Errorf("realm %v", gw["realm"])
	}
	base := "http://" + tsName + "." + namespace + ".svc:5001"
	if gw["token_endpoint"] != base+"/token" {
		t.Errorf("token_endpoint %v, want %s/token", gw["token_endpoint"], base)
	}
	if keys, _ := gw["keys"].(map[string]any); keys["jwks_url"] != base+"/.well-known/jwks.json" {
		t.Errorf("keys %v", gw["keys"])
	}
	svc := m.services[tsName]
	if svc.Spec.Ports[0].Port != 5001 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("token service port %+v", svc.Spec.Ports)
	}
	if p := m.deployments[tsName].Spec.Template.Spec.Containers[0].Ports[0].ContainerPort; p != 5001 {
		t.Errorf("token service container port %d", p)
	}
	if p := m.services[gwName].Spec.Ports[0].Port; p != 80 {
		t.Errorf("gateway service port %d", p)
	}
	// The default existing Secret is mounted for the key; the gateway needs
	// none with ECR.
	if v := m.deployments[tsName].Spec.Template.Spec.Volumes; !hasSecretVolume(v, "registry-gateway-keys") {
		t.Errorf("token service volumes %+v", v)
	}
	if v := m.deployments[gwName].Spec.Template.Spec.Volumes; hasSecretVolume(v, "") {
		t.Errorf("gateway mounts a Secret without one configured: %+v", v)
	}
	if len(m.ingresses) != 0 || len(m.hpas) != 0 || len(m.monitors) != 0 || len(m.policies) != 2 {
		t.Errorf("defaults: %d ingresses, %d HPAs, %d monitors, %d network policies", len(m.ingresses), len(m.hpas), len(m.monitors), len(m.policies))
	}
	// Only the gateway may reach the token service; nobody reaches the
	// metrics ports until networkPolicy.metricsFrom names someone.
	np := m.policies[tsName]
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 ||
		!subset(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels, m.deployments[gwName].Spec.Template.Labels) ||
		np.Spec.Ingress[0].Ports[0].Port.String() != "http" {
		t.Errorf("token service ingress %+v", np.Spec.Ingress)
	}
	if in := m.policies[gwName].Spec.Ingress; len(in) != 1 || len(in[0].Ports) != 1 || in[0].Ports[0].Port.String() != "http" {
		t.Errorf("gateway ingress %+v", in)
	}
	// The HTTP licence API says whose a token is.
	if h := ts["licenses"].(map[string]any)["http"].(map[string]any); h["username_path"] != "user.email" {
		t.Errorf("licenses.http %v", h)
	}
}

// defaultTrusted is values.yaml's trustedProxies.
var defaultTrusted = []any{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"}

// Both services believe X-Forwarded-For from trustedProxies (the ingress
// controller, the gateways) unless their config sets trusted_proxies, even
// to [].
func TestTrustedProxies(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		name, values string
		args         []string
		ts, gw       []any
	}{
		{"defaults", "", nil, defaultTrusted, defaultTrusted},
		{"ingress", "ci/ingress-certmanager-values.yaml", nil, defaultTrusted, defaultTrusted},
		{"pod CIDR", "ci/http-license-values.yaml", nil, []any{"10.42.0.0/16"}, []any{"10.42.0.0/16"}},
		{"value", "", []string{"--set-json", `trustedProxies=["10.244.0.0/16","fd00::/8"]`},
			[]any{"10.244.0.0/16", "fd00::/8"}, []any{"10.244.0.0/16", "fd00::/8"}},
		{"config wins", "", []string{"--set-json", `gateway.config.trusted_proxies=[]`,
			"--set-json", `tokenserver.config.trusted_proxies=["10.1.0.0/16"]`}, []any{"10.1.0.0/16"}, []any{}},
		{"config null", "", []string{"--set-json", `gateway.config.trusted_proxies=null`}, defaultTrusted, defaultTrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, h, tc.values, tc.args...)
			ts, gw := config(t, m, "tokenserver"), config(t, m, "gateway")
			got := func(cfg map[string]any) []any {
				l, ok := cfg["trusted_proxies"].([]any)
				if !ok && cfg["trusted_proxies"] != nil {
					t.Errorf("trusted_proxies %#v", cfg["trusted_proxies"])
				}
				return l
			}
			if g := got(ts); !slices.Equal(g, tc.ts) || ts["trusted_proxies"] == nil {
				t.Errorf("token service trusted_proxies %v, want %v", ts["trusted_proxies"], tc.ts)
			}
			if g := got(gw); !slices.Equal(g, tc.gw) || gw["trusted_proxies"] == nil {
				t.Errorf("gateway trusted_proxies %v, want %v", gw["trusted_proxies"], tc.gw)
			}
		})
	}
}

// Metrics and pprof are served on a port of their own, on a ClusterIP
// Service of their own that the ServiceMonitor scrapes; the customer
// Service and the Ingress never lead to it, and the NetworkPolicies open it
// to metricsFrom only.
func TestMetricsPort(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "ci/ingress-certmanager-values.yaml", "--set", "gateway.service.type=LoadBalancer")
	for _, name := range []string{tsName, gwName} {
		c := m.deployments[name].Spec.Template.Spec.Containers[0]
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if ports["metrics"] != 9090 || ports["http"] == 9090 || len(ports) != 2 {
			t.Errorf("%s container ports %v", name, ports)
		}
		if c.LivenessProbe.HTTPGet.Port.String() != "http" || c.ReadinessProbe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s: probes not on the customer port", name)
		}
		// The customer Service: no metrics port.
		for _, p := range m.services[name].Spec.Ports {
			if p.Name != "http" || p.TargetPort.String() != "http" {
				t.Errorf("%s Service port %+v", name, p)
			}
		}
		svc := m.services[name+"-metrics"]
		if svc == nil {
			t.Fatalf("no Service %s-metrics: %v", name, keys(m.services))
		}
		if svc.Spec.Type != "ClusterIP" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" ||
			svc.Spec.Ports[0].Port != 9090 || svc.Spec.Ports[0].TargetPort.String() != "metrics" ||
			!subset(svc.Spec.Selector, m.deployments[name].Spec.Template.Labels) {
			t.Errorf("metrics Service %+v", svc.Spec)
		}
		mon := m.monitors[name]
		if mon == nil || len(mon.Spec.Endpoints) != 1 || mon.Spec.Endpoints[0].Port != "metrics" || mon.Spec.Endpoints[0].Path != "/metrics" {
			t.Fatalf("ServiceMonitor %+v", mon)
		}
		// It selects the metrics Service and not the customer one.
		if !subset(mon.Spec.Selector.MatchLabels, svc.Labels) || subset(mon.Spec.Selector.MatchLabels, m.services[name].Labels) {
			t.Errorf("ServiceMonitor selector %v: metrics Service %v, customer Service %v", mon.Spec.Selector.MatchLabels, svc.Labels, m.services[name].Labels)
		}
		// The metrics port: from metricsFrom (the monitoring namespace)
		// and, with the ServiceMonitors, networkPolicy.prometheus (its
		// Prometheus pods there) only; the customer port: from neither.
		var metricsRules int
		for _, r := range m.policies[name].Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port.String() != "metrics" {
					for _, f := range r.From {
						if f.NamespaceSelector != nil && f.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "monitoring" {
							t.Errorf("%s: monitoring reaches port %s", name, p.Port.String())
						}
					}
					continue
				}
				metricsRules++
				if len(r.From) != 2 || r.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" || r.From[0].PodSelector != nil ||
					r.From[1].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" ||
					r.From[1].PodSelector == nil || r.From[1].PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
					t.Errorf("%s: metrics port open to %+v", name, r.From)
				}
			}
		}
		if metricsRules != 1 {
			t.Errorf("%s: %d rules for the metrics port", name, metricsRules)
		}
	}
	// The Ingress leads to the gateway's customer port only.
	for _, r := range m.ingresses[gwName].Spec.Rules {
		for _, p := range r.HTTP.Paths {
			if b := p.Backend.Service; b.Name != gwName || b.Port.Name != "http" {
				t.Errorf("Ingress path %s to %+v", p.Path, b)
			}
		}
	}
	if m.services[gwName].Spec.Type != "LoadBalancer" {
		t.Errorf("gateway Service %s", m.services[gwName].Spec.Type)
	}

	// A metrics listener on loopback stays in the pod: no port, no Service;
	// a ServiceMonitor then has nothing to scrape, and the chart says so.
	m = mustRender(t, h, "", "--set", "gateway.config.metrics.listen=127.0.0.1:9090", "--set-json", "tokenserver.config.metrics=null")
	for _, name := range []string{tsName, gwName} {
		if ports := m.deployments[name].Spec.Template.Spec.Containers[0].Ports; len(ports) != 1 {
			t.Errorf("%s: ports %+v", name, ports)
		}
		if m.services[name+"-metrics"] != nil {
			t.Errorf("%s: metrics Service without a reachable listener", name)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "serviceMonitor.enabled=true", "--set", "gateway.config.metrics.listen=127.0.0.1:9090"}, "serviceMonitor.enabled needs gateway.config.metrics.listen"},
		{[]string{"--set", "tokenserver.config.metrics.listen=0.0.0.0:5001"}, "the metrics port must differ"},
	} {
		if out, err := render(t, h, "", tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: err %v, output lacks %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}

func hasSecretVolume(vols []corev1.Volume, name string) bool {
	for _, v := range vols {
		if v.Secret != nil && (name == "" || v.Secret.SecretName == name) {
			return true
		}
	}
	return false
}

func TestIngressWithCertManager(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "ci/ingress-certmanager-values.yaml")
	ing := m.ingresses[gwName]
	if ing == nil {
		t.Fatal("no Ingress")
	}
	if ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt-prod" || ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"] != "0" {
		t.Errorf("annotations %v", ing.Annotations)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "rg-registry-gateway-tls" || ing.Spec.TLS[0].Hosts[0] != "registry.vendor.example" {
		t.Errorf("tls %+v", ing.Spec.TLS)
	}
	r := ing.Spec.Rules[0]
	if r.Host != "registry.vendor.example" || r.HTTP.Paths[0].Backend.Service.Name != gwName || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("rule %+v", r)
	}
	if gw := config(t, m, "gateway"); gw["realm"] != "https://registry.vendor.example/token" {
		t.Errorf("realm %v", gw["realm"])
	}
	if len(m.monitors) != 2 || m.monitors[gwName].Metadata.Labels["release"] != "prometheus" || m.monitors[gwName].Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("service monitors %+v", m.monitors)
	}
	if from := m.policies[gwName].Spec.Ingress[0].From; len(from) != 1 || from[0].NamespaceSelector == nil ||
		from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "ingress-nginx" {
		t.Errorf("gateway ingress peers %+v", from)
	}
}

func TestExistingSecret(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "ci/existing-secret-values.yaml")
	if len(m.secrets) != 0 {
		t.Errorf("the chart created Secrets although existing ones are named: %v", keys(m.secrets))
	}
	if !hasSecretVolume(m.deployments[tsName].Spec.Template.Spec.Volumes, "vendor-token-keys") ||
		!hasSecretVolume(m.deployments[gwName].Spec.Template.Spec.Volumes, "vendor-upstream") {
		t.Error("existing Secrets not mounted")
	}
	// Helm merges the values over the defaults: the values file's static
	// upstream must not leave the default ecr beside it (check-config in
	// TestRender would refuse both).
	up := config(t, m, "gateway")["upstream"].(map[string]any)
	if _, ok := up["ecr"]; ok {
		t.Errorf("upstream %v", up)
	}
}

func TestHPA(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "ci/hpa-values.yaml")
	if len(m.hpas) != 2 || *m.hpas[gwName].Spec.MinReplicas != 3 || m.hpas[gwName].Spec.MaxReplicas != 20 {
		t.Errorf("HPAs %v", keys(m.hpas))
	}
	if a := m.deployments[gwName].Spec.Template.Spec.Affinity.PodAntiAffinity; len(a.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("hard anti-affinity %+v", a)
	}
	if m.pdbs[gwName].Spec.MaxUnavailable.IntValue() != 2 {
		t.Errorf("PDB %+v", m.pdbs[gwName].Spec)
	}
}

func TestECRWithIRSA(t *testing.T) {
	h := helm(t)
	m := mustRender(t, h, "ci/ecr-irsa-values.yaml")
	sa := m.accounts[gwName]
	if sa == nil || sa.Annotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/registry-gateway-ecr" {
		t.Fatalf("gateway ServiceAccount %+v", sa)
	}
	if ts := m.accounts[tsName]; ts == nil || len(ts.Annotations) != 0 {
		t.Errorf("the token service's ServiceAccount carries the IAM role: %+v", ts)
	}
	if n := m.deployments[gwName].Spec.Template.Spec.ServiceAccountName; n != gwName {
		t.Errorf("gateway runs as %s", n)
	}
	up := config(t, m, "gateway")["upstream"].(map[string]any)
	if up["ecr"].(map[string]any)["registry_id"] != "123456789012" || up["proxy_blobs"] != true {
		t.Errorf("upstream %v", up)
	}
}

// Secrets created from values are Secrets, and the pods' checksum/secret
// follows their content, so that a new key rolls the pods; checksum/config
// follows the configuration.
func TestChecksumsFollowContent(t *testing.T) {
	h := helm(t)
	const v = "ci/files-from-values-values.yaml"
	m := mustRender(t, h, v)
	sec := m.secrets[tsName+"-files"]
	if sec == nil || !strings.Contains(string(sec.Data["token.key"]), "PRIVATE KEY") || sec.Data["licenses.yaml"] == nil {
		t.Fatalf("token service Secret %v", keys(m.secrets))
	}
	ann := func(m *manifest, name, key string) string { return m.deployments[name].Spec.Template.Annotations[key] }
	base := map[string]string{"config": ann(m, tsName, "checksum/config"), "secret": ann(m, tsName, "checksum/secret")}

	m2 := mustRender(t, h, v, "--set-string", "tokenserver.secret.files.next\\.key=another key")
	if ann(m2, tsName, "checksum/secret") == base["secret"] || ann(m2, tsName, "checksum/config") != base["config"] {
		t.Error("a new file in the Secret did not change checksum/secret alone")
	}
	if ann(m2, gwName, "checksum/secret") != ann(m, gwName, "checksum/secret") {
		t.Error("the gateway rolls for the token service's Secret")
	}
	m3 := mustRender(t, h, v, "--set", "tokenserver.config.token_ttl=10m")
	if ann(m3, tsName, "checksum/config") == base["config"] || ann(m3, tsName, "checksum/secret") != base["secret"] {
		t.Error("a config change did not change checksum/config alone")
	}
}

// The schema refuses unknown keys and wrong types before anything renders;
// a configuration the service would refuse renders, and check-config
// catches it (so TestRender's check can fail).
func TestBadValues(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "replicas=3"}, "replicas"},
		{[]string{"--set", "gateway.replicaCount=two"}, "replicaCount"},
		{[]string{"--set", "tokenserver.autoscaling.enable=true"}, "enable"},
		{[]string{"--set", "ingress.tls.clusterIssuer=true"}, "clusterIssuer"},
		{[]string{"--set", "gateway.podAntiAffinity=sometimes"}, "podAntiAffinity"},
		{[]string{"--set", "gateway.config.listen=5000"}, "listen"},
		{[]string{"--set", "networkPolicy.upstream.ports[0]=https"}, "ports"},
		{[]string{"--set", "trustedProxies[0]=everyone"}, "trustedProxies"},
		{[]string{"--set", "trustedProxies=10.0.0.0/8"}, "trustedProxies"},
	} {
		out, err := render(t, h, "", tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: err %v, output lacks %q:\n%s", tc.args, err, tc.want, out)
		}
	}

	m := mustRender(t, h, "", "--set", "tokenserver.config.token_ttl=1s", "--set", "gateway.config.upstream.static.username=x",
		"--set-json", `trustedProxies=["10.0.0.0/33"]`)
	for _, c := range []struct{ service, name, want string }{
		{"tokenserver", tsName, "token_ttl"},
		{"gateway", gwName, "set ecr or static, not both"},
		{"tokenserver", tsName, "trusted_proxies[0]"},
		{"gateway", gwName, "trusted_proxies[0]"},
	} {
		out, err := checkConfig(t, c.service, m.configMaps[c.name].Data[c.service+".yaml"])
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s check-config accepted a bad configuration: %v %s", c.service, err, out)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
