package charttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// No --kube-version anywhere: helm v4 built with `go install` takes its
// default cluster version from the client-go it was built with (1.37 for
// v4.3.2), which meets the chart's kubeVersion, so the commands the docs
// show work as printed (TestDocumentedCommands).
const (
	chartDir  = ".."
	repoRoot  = "../../.."
	release   = "rg"
	namespace = "registry"
)

// valuesFiles are the chart's defaults ("") and every values file it
// ships: the documented examples under ../examples (one per licence
// backend) and the realistic installations under ../ci. Found, not
// listed, so that a new example is rendered, linted and checked too.
var valuesFiles = func() []string {
	out := []string{""}
	for _, dir := range []string{"examples", "ci"} {
		files, err := filepath.Glob(filepath.Join(chartDir, dir, "*.yaml"))
		if err != nil {
			panic(err)
		}
		for _, f := range files {
			out = append(out, filepath.Join(dir, filepath.Base(f)))
		}
	}
	return out
}()

// bins holds bin/tokenserver and bin/gateway, built once by TestMain from
// the product module.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "charttest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = dir
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/tokenserver", "./cmd/gateway")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the services: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// accountstest.Main stops the PostgreSQL server the tests shared.
	code := accountstest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// helm returns the helm CLI: $HELM, or where scripts/helm.sh caches it.
func helm(t *testing.T) string {
	return testutil.CachedTool(t, repoRoot, "helm.sh", "HELM", "REQUIRE_HELM")
}

// run runs a command and returns its combined output and error.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// render runs helm template with the values file (relative to the chart)
// and extra arguments.
func render(t *testing.T, h, values string, extra ...string) (string, error) {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	if values != "" {
		args = append(args, "-f", filepath.Join(chartDir, values))
	}
	return run(t, h, append(args, extra...)...)
}

// manifest is what one values file renders to, decoded.
type manifest struct {
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	accounts     map[string]*corev1.ServiceAccount
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	ingresses    map[string]*networkingv1.Ingress
	policies     map[string]*networkingv1.NetworkPolicy
	monitors     map[string]*serviceMonitor
	jobs         map[string]*batchv1.Job
	kindsInOrder []string
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// the chart sets. The operator's Go module is large; a strict decode into
// the fields the CRD defines catches a misspelt or misplaced key all the
// same.
type serviceMonitor struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   metav1ObjectMeta   `json:"metadata"`
	Spec       serviceMonitorSpec `json:"spec"`
}

type metav1ObjectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
}

type serviceMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Endpoints []struct {
		Port     string `json:"port"`
		Path     string `json:"path"`
		Interval string `json:"interval"`
	} `json:"endpoints"`
}

// put files a new, empty object of its type under name and returns it
// for decoding.
func put[T any](m map[string]*T, name string) any {
	o := new(T)
	m[name] = o
	return o
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits helm's output into objects and decodes each strictly into
// its API type: an unknown or misspelt field, a duplicate key or a wrong
// type fails, as does a kind the chart is not expected to render.
func decode(t *testing.T, out string) *manifest {
	t.Helper()
	m := &manifest{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		accounts: map[string]*corev1.ServiceAccount{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, ingresses: map[string]*networkingv1.Ingress{},
		policies: map[string]*networkingv1.NetworkPolicy{}, monitors: map[string]*serviceMonitor{},
		jobs: map[string]*batchv1.Job{},
	}
	for _, doc := range docSep.Split(out, -1) {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if string(js) == "null" {
			continue // only comments
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &head); err != nil {
			t.Fatalf("object header: %v\n%s", err, doc)
		}
		name := head.Metadata.Name
		if name == "" || head.Metadata.Namespace != namespace {
			t.Errorf("%s %q: namespace %q, want %q", head.Kind, name, head.Metadata.Namespace, namespace)
		}
		var obj any
		switch gvk := head.APIVersion + "/" + head.Kind; gvk {
		case "apps/v1/Deployment":
			obj = put(m.deployments, name)
		case "v1/Service":
			obj = put(m.services, name)
		case "v1/ConfigMap":
			obj = put(m.configMaps, name)
		case "v1/Secret":
			obj = put(m.secrets, name)
		case "v1/ServiceAccount":
			obj = put(m.accounts, name)
		case "policy/v1/PodDisruptionBudget":
			obj = put(m.pdbs, name)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = put(m.hpas, name)
		case "networking.k8s.io/v1/Ingress":
			obj = put(m.ingresses, name)
		case "networking.k8s.io/v1/NetworkPolicy":
			obj = put(m.policies, name)
		case "monitoring.coreos.com/v1/ServiceMonitor":
			obj = put(m.monitors, name)
		case "batch/v1/Job":
			obj = put(m.jobs, name)
		default:
			t.Fatalf("unexpected object %s %q", gvk, name)
		}
		strict, err := sigsjson.UnmarshalStrict(js, obj)
		if err == nil && len(strict) > 0 {
			err = fmt.Errorf("%v", strict)
		}
		if err != nil {
			t.Fatalf("%s %q does not decode strictly: %v\n%s", head.Kind, name, err, doc)
		}
		m.kindsInOrder = append(m.kindsInOrder, head.Kind)
	}
	return m
}

// checkConfig runs the service's own check-config on a rendered
// configuration. The files it names live in Secrets mounted only in the
// pod, hence -skip-files.
func checkConfig(t *testing.T, service, config string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), service+".yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return run(t, filepath.Join(bins, service), "check-config", "-skip-files", path)
}

func TestLint(t *testing.T) {
	h := helm(t)
	for _, v := range valuesFiles {
		args := []string{"lint", "--strict", chartDir}
		if v != "" {
			args = append(args, "-f", filepath.Join(chartDir, v))
		}
		if out, err := run(t, h, args...); err != nil {
			t.Errorf("helm lint %s: %v\n%s", v, err, out)
		}
	}
}

// Every values file renders objects that decode strictly, carry service
// configurations the services accept, and keep the chart's policies.
func TestRender(t *testing.T) {
	h := helm(t)
	for _, v := range valuesFiles {
		name := v
		if name == "" {
			name = "defaults"
		}
		t.Run(strings.TrimSuffix(filepath.Base(name), ".yaml"), func(t *testing.T) {
			out, err := render(t, h, v)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			m := decode(t, out)
			checkPolicies(t, m, v)
			for _, c := range []string{"tokenserver", "gateway"} {
				cm := m.configMaps[release+"-registry-gateway-"+c]
				if cm == nil {
					t.Fatalf("no ConfigMap for %s", c)
				}
				if out, err := checkConfig(t, c, cm.Data[c+".yaml"]); err != nil || strings.TrimSpace(out) != "ok" {
					t.Errorf("%s check-config: %v\n%s\nconfig:\n%s", c, err, out, cm.Data[c+".yaml"])
				}
			}
		})
	}
}

// checkPolicies asserts what every installation must have.
func checkPolicies(t *testing.T, m *manifest, values string) {
	t.Helper()
	checkJobs(t, m, values)
	if len(m.deployments) != 2 {
		t.Fatalf("%d Deployments, want 2", len(m.deployments))
	}
	secretValues := secretFileContents(t, values)
	for name, cm := range m.configMaps {
		for key, data := range cm.Data {
			if strings.Contains(data, "PRIVATE KEY") {
				t.Errorf("ConfigMap %s/%s holds a private key", name, key)
			}
			// Line by line: an encoded copy (JSON, a YAML block) keeps the
			// lines of a secret file intact.
			for _, s := range secretValues {
				for _, line := range strings.Split(s, "\n") {
					if line = strings.TrimSpace(line); len(line) >= 12 && strings.Contains(data, line) {
						t.Errorf("ConfigMap %s/%s holds a line of a secret file: %q", name, key, line)
					}
				}
			}
		}
	}
	for name, d := range m.deployments {
		spec := d.Spec.Template.Spec
		if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("%s: rolling update must keep maxUnavailable 0: %+v", name, d.Spec.Strategy)
		}
		if hpa := m.hpas[name]; hpa != nil {
			if d.Spec.Replicas != nil {
				t.Errorf("%s: replicas set although an HPA scales it", name)
			}
			if hpa.Spec.ScaleTargetRef.Name != name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
				t.Errorf("%s: HPA %+v", name, hpa.Spec)
			}
		} else if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
			t.Errorf("%s: replicas %v, want at least 2", name, d.Spec.Replicas)
		}
		if a := spec.Affinity; a == nil || a.PodAntiAffinity == nil {
			t.Errorf("%s: no pod anti-affinity", name)
		}
		pdb := m.pdbs[name]
		if pdb == nil {
			t.Errorf("%s: no PodDisruptionBudget", name)
		} else if !subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("%s: PDB selector %v does not match the pods %v", name, pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
		for _, ann := range []string{"checksum/config", "checksum/secret"} {
			if d.Spec.Template.Annotations[ann] == "" {
				t.Errorf("%s: no %s annotation", name, ann)
			}
		}
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v", name, psc)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(spec.Containers))
		}
		c := spec.Containers[0]
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: container securityContext %+v", name, sc)
		}
		if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: liveness probe %+v", name, p)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: readiness probe %+v", name, p)
		}
		if l := c.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds < 1 {
			t.Errorf("%s: no preStop sleep: %+v", name, l)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %+v", name, c.Resources)
		}
		// The pod's volumes name objects that exist (or an existing Secret
		// the values name).
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("%s: volume %s names ConfigMap %s, not rendered", name, v.Name, v.ConfigMap.Name)
			}
			if v.Secret == nil || m.secrets[v.Secret.SecretName] != nil {
				continue
			}
			if given := readValues(t, values) + readValues(t, ""); !strings.Contains(given, "existingSecret: "+v.Secret.SecretName) {
				t.Errorf("%s: volume %s names Secret %s, neither rendered nor given", name, v.Name, v.Secret.SecretName)
			}
		}
		if sa := spec.ServiceAccountName; m.accounts[sa] == nil {
			t.Errorf("%s: ServiceAccount %s not rendered", name, sa)
		}
		if svc := m.services[name]; svc == nil || !subset(svc.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("%s: no Service selecting its pods", name)
		}
	}
}

// checkJobs asserts what the migration Job must keep: a hook before install
// and upgrade, the token service's configuration and files, the pods'
// restrictions, and an objects of its own for each thing it mounts.
func checkJobs(t *testing.T, m *manifest, values string) {
	t.Helper()
	for name, j := range m.jobs {
		if name != migrateName {
			t.Errorf("unexpected Job %s", name)
			continue
		}
		if j.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" {
			t.Errorf("%s: hook %q", name, j.Annotations["helm.sh/hook"])
		}
		spec := j.Spec.Template.Spec
		if spec.RestartPolicy != corev1.RestartPolicyNever || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: restartPolicy %s, automount %v", name, spec.RestartPolicy, spec.AutomountServiceAccountToken)
		}
		if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod securityContext %+v", name, psc)
		}
		c := spec.Containers[0]
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: container securityContext %+v", name, sc)
		}
		// The token service's image and configuration.
		ts := m.deployments[tsName].Spec.Template.Spec.Containers[0]
		if c.Image != ts.Image || !slices.Equal(c.Command, ts.Command) {
			t.Errorf("%s: runs %s %v, the token service %s %v", name, c.Image, c.Command, ts.Image, ts.Command)
		}
		for _, v := range spec.Volumes {
			switch {
			case v.ConfigMap != nil:
				cm := m.configMaps[v.ConfigMap.Name]
				if cm == nil || cm.Annotations["helm.sh/hook"] != j.Annotations["helm.sh/hook"] {
					t.Errorf("%s: ConfigMap %s is not a hook of its own (the release's objects do not exist yet)", name, v.ConfigMap.Name)
				} else if cm.Data["tokenserver.yaml"] != m.configMaps[tsName].Data["tokenserver.yaml"] {
					t.Errorf("%s: its configuration differs from the token service's:\n%s", name, cm.Data["tokenserver.yaml"])
				}
			case v.Secret != nil:
				if sec := m.secrets[v.Secret.SecretName]; sec != nil {
					if sec.Annotations["helm.sh/hook"] != j.Annotations["helm.sh/hook"] {
						t.Errorf("%s: Secret %s is not a hook", name, sec.Name)
					}
				} else if given := readValues(t, values) + readValues(t, ""); !strings.Contains(given, "existingSecret: "+v.Secret.SecretName) {
					t.Errorf("%s: volume %s names Secret %s, neither rendered nor given", name, v.Name, v.Secret.SecretName)
				}
			}
		}
	}
}

// secretFileContents lists the secret.files contents of a values file.
func secretFileContents(t *testing.T, values string) []string {
	t.Helper()
	var v struct {
		Tokenserver, Gateway struct {
			Secret struct {
				Files map[string]string `json:"files"`
			} `json:"secret"`
		}
	}
	if err := yaml.Unmarshal([]byte(readValues(t, values)), &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range []map[string]string{v.Tokenserver.Secret.Files, v.Gateway.Secret.Files} {
		for _, c := range f {
			out = append(out, c)
		}
	}
	return out
}

func readValues(t *testing.T, values string) string {
	t.Helper()
	if values == "" {
		values = "values.yaml"
	}
	b, err := os.ReadFile(filepath.Join(chartDir, values))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
