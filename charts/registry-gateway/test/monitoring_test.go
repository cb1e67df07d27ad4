package charttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// prometheusRule is the part of the Prometheus Operator's PrometheusRule
// the chart sets; spec is compared whole with the rule file.
type prometheusRule struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Metadata   metav1ObjectMeta `json:"metadata"`
	Spec       json.RawMessage  `json:"spec"`
}

// renderMonitoring renders only the two monitoring templates.
func renderMonitoring(t *testing.T, h string, extra ...string) (string, error) {
	t.Helper()
	return render(t, h, "", append([]string{
		"--show-only", "templates/prometheusrule.yaml", "--show-only", "templates/grafana-dashboard.yaml",
	}, extra...)...)
}

// TestMonitoringMatchesTheFiles: with prometheusRule and grafanaDashboard
// on, the chart renders a PrometheusRule whose spec is exactly
// deploy/monitoring/alerts.yaml, and a ConfigMap with the sidecar's label
// holding deploy/monitoring/dashboard.json byte for byte: the operator and
// a Prometheus loading the file get the same rules. (deploy/monitoring/test
// parses both and checks the metrics they name.)
func TestMonitoringMatchesTheFiles(t *testing.T) {
	h := helm(t)
	out, err := renderMonitoring(t, h, "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true",
		"--set", "prometheusRule.labels.release=kube-prometheus-stack", "--set", "grafanaDashboard.annotations.grafana_folder=Registry")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rule *prometheusRule
	var dash *corev1.ConfigMap
	for _, doc := range docSep.Split(out, -1) {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		var head struct{ Kind string }
		if err := json.Unmarshal(js, &head); err != nil {
			t.Fatal(err)
		}
		var obj any
		switch head.Kind {
		case "":
			continue
		case "PrometheusRule":
			rule = &prometheusRule{}
			obj = rule
		case "ConfigMap":
			dash = &corev1.ConfigMap{}
			obj = dash
		default:
			t.Fatalf("unexpected %s\n%s", head.Kind, doc)
		}
		if strict, err := sigsjson.UnmarshalStrict(js, obj); err != nil || len(strict) > 0 {
			t.Fatalf("%s does not decode strictly: %v %v\n%s", head.Kind, err, strict, doc)
		}
	}
	if rule == nil || dash == nil {
		t.Fatalf("want a PrometheusRule and a ConfigMap:\n%s", out)
	}

	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Metadata.Namespace != namespace ||
		rule.Metadata.Labels["release"] != "kube-prometheus-stack" || rule.Metadata.Labels["app.kubernetes.io/instance"] != release {
		t.Errorf("PrometheusRule header: %s %+v", rule.APIVersion, rule.Metadata)
	}
	file, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "monitoring", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := yaml.YAMLToJSON(file)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, rule.Spec, want) {
		t.Errorf("the PrometheusRule's spec is not deploy/monitoring/alerts.yaml:\n%s", rule.Spec)
	}

	if dash.Labels["grafana_dashboard"] != "1" || dash.Annotations["grafana_folder"] != "Registry" || dash.Namespace != namespace {
		t.Errorf("dashboard ConfigMap: namespace %q, labels %v, annotations %v", dash.Namespace, dash.Labels, dash.Annotations)
	}
	file, err = os.ReadFile(filepath.Join(repoRoot, "deploy", "monitoring", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := dash.Data["registry-gateway.json"]; got != strings.TrimSuffix(string(file), "\n") {
		t.Errorf("the ConfigMap's registry-gateway.json is not deploy/monitoring/dashboard.json")
	}

	// The sidecar may watch another namespace than the release's.
	out, err = render(t, h, "", "--show-only", "templates/grafana-dashboard.yaml",
		"--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring")
	if err != nil || !strings.Contains(out, "namespace: monitoring\n") {
		t.Errorf("grafanaDashboard.namespace: %v\n%s", err, out)
	}
}

// TestMonitoringOffByDefault: neither object unless asked for (the
// PrometheusRule needs the Operator's CRD), and a misspelt key is refused
// by the values schema, named.
func TestMonitoringOffByDefault(t *testing.T) {
	h := helm(t)
	if out, err := renderMonitoring(t, h); err == nil || !strings.Contains(out, "could not find template") {
		t.Errorf("defaults rendered a monitoring object: %v\n%s", err, out)
	}
	for bad, key := range map[string]string{"prometheusRule.enable=true": "'enable'", "grafanaDashboard.label.x=1": "'label'"} {
		out, err := render(t, h, "", "--set", bad)
		if err == nil || !strings.Contains(out, key) {
			t.Errorf("--set %s: %v\n%s", bad, err, out)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
