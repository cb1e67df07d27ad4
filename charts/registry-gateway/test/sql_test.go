package charttest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// With licenses.sql the chart runs `tokenserver accounts migrate` as a
// pre-install,pre-upgrade hook Job, with hooks of its own for what it
// mounts (the release's ConfigMap and chart-made Secret do not exist before
// the first install), a NetworkPolicy that lets it reach only DNS and the
// database, and without a Kubernetes API token. Without licenses.sql, or
// with migrationJob.enabled false, there is none; SQLite is refused.
func TestMigrationJob(t *testing.T) {
	h := helm(t)

	for _, tc := range []struct {
		name   string
		values string
		args   []string
	}{
		{"defaults (http)", "", nil},
		{"file", "examples/file-values.yaml", nil},
		{"off", "", append([]string{"--set", "tokenserver.migrationJob.enabled=false"}, sqlArgs...)},
	} {
		m := mustRender(t, h, tc.values, tc.args...)
		if len(m.jobs) != 0 || m.configMaps[migrateName] != nil || m.policies[migrateName] != nil {
			t.Errorf("%s: migration objects rendered: jobs %v", tc.name, keys(m.jobs))
		}
	}

	m := mustRender(t, h, "", sqlArgs...)
	checkPolicies(t, m, "")
	j := m.jobs[migrateName]
	if j == nil {
		t.Fatalf("no Job %s: %v", migrateName, keys(m.jobs))
	}
	c := j.Spec.Template.Spec.Containers[0]
	wantArgs := []string{"accounts", "migrate", "-config", "/etc/registry-gateway/config/tokenserver.yaml", "--actor", "helm release " + release}
	if !slices.Equal(c.Command, []string{"/tokenserver"}) || !slices.Equal(c.Args, wantArgs) {
		t.Errorf("Job runs %v %v, want /tokenserver %v", c.Command, c.Args, wantArgs)
	}
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	if mounts["config"] != "/etc/registry-gateway/config" || mounts["secrets"] != "/etc/registry-gateway/secrets" {
		t.Errorf("Job mounts %v", mounts)
	}
	if !hasSecretVolume(j.Spec.Template.Spec.Volumes, "registry-gateway-keys") {
		t.Errorf("Job does not mount the token service's Secret: %+v", j.Spec.Template.Spec.Volumes)
	}
	if sa := j.Spec.Template.Spec.ServiceAccountName; sa != "default" {
		t.Errorf("Job runs as %q before the chart's ServiceAccount exists", sa)
	}
	for _, obj := range []struct {
		kind string
		ann  map[string]string
	}{{"ConfigMap", m.configMaps[migrateName].Annotations}, {"NetworkPolicy", m.policies[migrateName].Annotations}, {"Job", j.Annotations}} {
		if obj.ann["helm.sh/hook"] != "pre-install,pre-upgrade" || obj.ann["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
			t.Errorf("%s hook annotations %v", obj.kind, obj.ann)
		}
		// What the Job mounts is created before it.
		if obj.kind != "Job" && obj.ann["helm.sh/hook-weight"] >= j.Annotations["helm.sh/hook-weight"] {
			t.Errorf("%s weight %s, the Job's %s", obj.kind, obj.ann["helm.sh/hook-weight"], j.Annotations["helm.sh/hook-weight"])
		}
	}
	// The Job's pod: nothing in, DNS and the database out.
	np := m.policies[migrateName]
	if !subset(np.Spec.PodSelector.MatchLabels, j.Spec.Template.Labels) || len(np.Spec.Ingress) != 0 ||
		!slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("Job NetworkPolicy %+v", np.Spec)
	}
	if got := egressPorts(np); !slices.Equal(got, []string{"53", "53", "5432"}) {
		t.Errorf("Job egress ports %v", got)
	}
	// Its pods are not the token service's: no Service selects them.
	for name, svc := range m.services {
		if subset(svc.Spec.Selector, j.Spec.Template.Labels) {
			t.Errorf("Service %s selects the Job's pods", name)
		}
	}

	// Files given as values: the Job gets a hook Secret of its own with
	// the same files, since the release's Secret is made after the hooks.
	m = mustRender(t, h, "ci/files-from-values-values.yaml", append(sqlArgs, "--set", "tokenserver.config.licenses.file=null")...)
	checkPolicies(t, m, "ci/files-from-values-values.yaml")
	hookSecret := m.secrets[migrateName+"-files"]
	if hookSecret == nil || hookSecret.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" {
		t.Fatalf("no hook Secret for the Job: %v", keys(m.secrets))
	}
	if own := m.secrets[tsName+"-files"]; own == nil || !mapsEqual(own.Data, hookSecret.Data) {
		t.Errorf("the Job's Secret differs from the token service's")
	}
	if !hasSecretVolume(m.jobs[migrateName].Spec.Template.Spec.Volumes, migrateName+"-files") {
		t.Errorf("Job volumes %+v", m.jobs[migrateName].Spec.Template.Spec.Volumes)
	}
	if m.policies[migrateName] != nil {
		t.Error("a NetworkPolicy for the Job with networkPolicy.enabled false")
	}

	// An existing ServiceAccount is there before the hooks: the Job uses it.
	m = mustRender(t, h, "", append(sqlArgs, "--set", "tokenserver.serviceAccount.create=false", "--set", "tokenserver.serviceAccount.name=vendor-ts")...)
	if sa := m.jobs[migrateName].Spec.Template.Spec.ServiceAccountName; sa != "vendor-ts" {
		t.Errorf("Job runs as %q, want the existing vendor-ts", sa)
	}

	// SQLite is a file in one pod: refused with the reason.
	out, err := render(t, h, "", "--set-json", `tokenserver.config.licenses={"http":null,"sql":{"driver":"sqlite","dsn":"/tmp/accounts.db"}}`)
	if err == nil || !strings.Contains(out, `tokenserver.config.licenses.sql.driver "sqlite"`) || !strings.Contains(out, "use postgres") {
		t.Errorf("sqlite: err %v\n%s", err, out)
	}
}

// The command of the rendered migration Job, with its rendered
// configuration, migrates a real PostgreSQL database, twice at once (two
// releases, or an upgrade's Job beside an operator's run) without either
// failing; the token service's own check then finds the schema current.
func TestMigrationJobAgainstPostgreSQL(t *testing.T) {
	h := helm(t)
	const values = "examples/sql-postgres-values.yaml"
	m := mustRender(t, h, values)
	j := m.jobs[migrateName]
	if j == nil {
		t.Fatalf("%s renders no migration Job", values)
	}
	// The pod's file system, under a temporary directory: the mounted
	// configuration, the Secret's files and the usage secret.
	root := t.TempDir()
	local := func(s string) string { return strings.ReplaceAll(s, "/etc/registry-gateway/", root+"/") }
	cfg := m.configMaps[migrateName].Data["tokenserver.yaml"]
	write(t, local("/etc/registry-gateway/config/tokenserver.yaml"), local(cfg))
	db := accountstest.Shared(t).NewDatabase(t)
	write(t, local("/etc/registry-gateway/secrets/postgres.dsn"), db.DSN)
	write(t, local("/etc/registry-gateway/usage/usage.secret"), strings.Repeat("ab", 32))
	if out, err := run(t, filepath.Join(bins, "tokenserver"), "keygen", "-dir", local("/etc/registry-gateway/secrets")); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}

	c := j.Spec.Template.Spec.Containers[0]
	if len(c.Command) != 1 || c.Command[0] != "/tokenserver" {
		t.Fatalf("Job command %v", c.Command)
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = local(a)
	}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	for i := range outs {
		wg.Go(func() {
			out, err := run(t, filepath.Join(bins, "tokenserver"), args...)
			if err != nil {
				t.Errorf("run %d of %v: %v\n%s", i, c.Args, err, out)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	// One run applied the schema, the other found it current (or applied
	// what was left when it got the lock).
	if joined := strings.Join(outs, ""); !strings.Contains(joined, "schema migrated to version") {
		t.Errorf("neither run migrated:\n%s", joined)
	}
	if out, err := run(t, filepath.Join(bins, "tokenserver"), "check-config", local("/etc/registry-gateway/config/tokenserver.yaml")); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("check-config after the Job: %v\n%s", err, out)
	}
}

// The token service reaches the licence API only with licenses.http, the
// database only with licenses.sql; every egress block takes CIDRs and peers
// (`to`), and one with neither renders no rule (an egress rule without
// `to` would reach every address).
func TestNetworkPolicyEgress(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		name, values string
		args         []string
		want         []string // the token service's egress, "to:port" per rule
	}{
		{"http", "", nil, []string{"dns", "0.0.0.0/0:443"}},
		{"file", "examples/file-values.yaml", nil, []string{"dns"}},
		{"sql", "", sqlArgs, []string{"dns", "0.0.0.0/0:5432"}},
		{"sql in the cluster", "examples/sql-postgres-values.yaml", nil, []string{"dns", "ns=databases,pod=postgresql:5432"}},
		{"sql cidr and peer", "", append([]string{"--set-json", `networkPolicy.database={"cidrs":["10.20.0.0/16"],"to":[{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"postgresql"}}}],"ports":[5432,6432]}`}, sqlArgs...),
			[]string{"dns", "10.20.0.0/16,pod=postgresql:5432,6432"}},
		{"sql nowhere", "", append([]string{"--set-json", `networkPolicy.database={"cidrs":[],"to":[],"ports":[5432]}`}, sqlArgs...), []string{"dns"}},
		{"licence API peer", "", []string{"--set-json", `networkPolicy.licenseAPI={"cidrs":[],"to":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"licensing"}}}],"ports":[8080]}`},
			[]string{"dns", "ns=licensing:8080"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, h, tc.values, tc.args...)
			if got := egressRules(m.policies[tsName]); !slices.Equal(got, tc.want) {
				t.Errorf("token service egress %v, want %v", got, tc.want)
			}
			if j := m.policies[migrateName]; j != nil {
				if got, want := egressRules(j), egressRules(m.policies[tsName]); !slices.Equal(got, want) {
					t.Errorf("migration Job egress %v, the token service's %v", got, want)
				}
			}
		})
	}
	// The gateway's upstream takes peers too.
	m := mustRender(t, h, "", "--set-json", `networkPolicy.upstream={"cidrs":[],"to":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"registry"}}}],"ports":[5000]}`)
	if got := egressRules(m.policies[gwName]); !slices.Equal(got, []string{"dns", "pod=registry-gateway:5001", "ns=registry:5000"}) {
		t.Errorf("gateway egress %v", got)
	}
}

// A service with tracing.endpoint set reaches the trace collector of
// networkPolicy.tracing (by default any address on 4318, OTLP/HTTP's port);
// with tracing off it gets no such rule.
func TestNetworkPolicyTracingEgress(t *testing.T) {
	h := helm(t)
	off := mustRender(t, h, "")
	on := mustRender(t, h, "",
		"--set", "gateway.config.tracing.endpoint=http://otel-collector.observability:4318",
		"--set", "tokenserver.config.tracing.endpoint=http://otel-collector.observability:4318",
		"--set-json", `networkPolicy.tracing={"cidrs":[],"to":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"observability"}}}],"ports":[4318]}`)
	for _, name := range []string{tsName, gwName} {
		if got := egressRules(off.policies[name]); slices.Contains(got, "ns=observability:4318") || slices.Contains(got, "0.0.0.0/0:4318") {
			t.Errorf("%s: tracing off, egress %v reaches a collector", name, got)
		}
		if got := egressRules(on.policies[name]); !slices.Contains(got, "ns=observability:4318") {
			t.Errorf("%s: tracing on, egress %v has no rule to the collector", name, got)
		}
	}
	// Only the service whose config has the endpoint gets the rule.
	gwOnly := mustRender(t, h, "", "--set", "gateway.config.tracing.endpoint=http://collector:4318")
	if got := egressRules(gwOnly.policies[gwName]); !slices.Contains(got, "0.0.0.0/0:4318") {
		t.Errorf("gateway egress %v, want the default collector rule", got)
	}
	if got := egressRules(gwOnly.policies[tsName]); slices.Contains(got, "0.0.0.0/0:4318") {
		t.Errorf("token service egress %v: its tracing is off", got)
	}
}

// With serviceMonitor.enabled the NetworkPolicies let the Prometheus of
// networkPolicy.prometheus (by default kube-prometheus-stack's pods in
// `monitoring`) reach both metrics ports, and nothing else; without
// ServiceMonitors, only metricsFrom.
func TestServiceMonitorThroughNetworkPolicies(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string // peers of the metrics rule, "" for no rule
	}{
		{"off", nil, nil},
		{"on", []string{"--set", "serviceMonitor.enabled=true"}, []string{"ns=monitoring,pod=prometheus"}},
		{"on, elsewhere", []string{"--set", "serviceMonitor.enabled=true", "--set-json",
			`networkPolicy.prometheus={"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"observability"}},"podSelector":null}`},
			[]string{"ns=observability"}},
		{"on, metricsFrom only", []string{"--set", "serviceMonitor.enabled=true", "--set-json", `networkPolicy.prometheus={"namespaceSelector":null,"podSelector":null}`,
			"--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"ops"}}}]`}, []string{"ns=ops"}},
		{"on, nobody", []string{"--set", "serviceMonitor.enabled=true", "--set-json", `networkPolicy.prometheus={"namespaceSelector":null,"podSelector":null}`}, nil},
		{"off, metricsFrom", []string{"--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"ops"}}}]`}, []string{"ns=ops"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, h, "", tc.args...)
			for _, name := range []string{tsName, gwName} {
				var got []string
				for _, r := range m.policies[name].Spec.Ingress {
					if len(r.Ports) == 1 && r.Ports[0].Port.String() == "metrics" {
						for _, p := range r.From {
							got = append(got, peer(p))
						}
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s: metrics port from %v, want %v", name, got, tc.want)
				}
			}
		})
	}
}

// egressRules describes a NetworkPolicy's egress: "dns" for the DNS rule,
// else its peers and ports, "10.0.0.0/8,ns=x,pod=y:443,8443".
func egressRules(np *networkingv1.NetworkPolicy) []string {
	if np == nil {
		return nil
	}
	var out []string
	for _, r := range np.Spec.Egress {
		var ports []string
		for _, p := range r.Ports {
			ports = append(ports, p.Port.String())
		}
		if len(r.To) == 0 && slices.Equal(ports, []string{"53", "53"}) {
			out = append(out, "dns")
			continue
		}
		var to []string
		for _, p := range r.To {
			to = append(to, peer(p))
		}
		out = append(out, strings.Join(to, ",")+":"+strings.Join(ports, ","))
	}
	return out
}

func egressPorts(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			out = append(out, p.Port.String())
		}
	}
	return out
}

// peer describes a NetworkPolicyPeer by its CIDR or the
// kubernetes.io/metadata.name and app.kubernetes.io/name it selects
// (app.kubernetes.io/name and component for the chart's own pods).
func peer(p networkingv1.NetworkPolicyPeer) string {
	if p.IPBlock != nil {
		return p.IPBlock.CIDR
	}
	var parts []string
	if p.NamespaceSelector != nil {
		parts = append(parts, "ns="+p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
	}
	if p.PodSelector != nil {
		parts = append(parts, "pod="+p.PodSelector.MatchLabels["app.kubernetes.io/name"])
	}
	return strings.Join(parts, ",")
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}
