package charttest

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// A misspelt key or a value of the wrong type inside a service's `config`
// is refused by values.schema.json (generated from the config structs,
// internal/configschema) before anything renders or reaches the cluster,
// by `helm template` and by `helm install`, and the message names the key.
// Before the schema covered the config blocks such values rendered and
// the pods crashed at start.
func TestSchemaRefusesBadConfig(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		args []string
		want []string // in helm's message, each
	}{
		{[]string{"--set", "tokenserver.config.token_tll=5m"}, []string{"/tokenserver/config", "'token_tll' not allowed"}},
		{[]string{"--set", "gateway.config.upstream.ecr.regoin=eu-west-1"}, []string{"/gateway/config/upstream/ecr", "'regoin' not allowed"}},
		{[]string{"--set", "gateway.config.upstream.azure.tenant=x"}, []string{"/gateway/config/upstream", "'azure' not allowed"}},
		{[]string{"--set-json", `tokenserver.config.licenses={"http":null,"sql":{"driver":"postgres","dsnfile":"/x"}}`}, []string{"/tokenserver/config/licenses/sql", "'dsnfile' not allowed"}},
		{[]string{"--set", "tokenserver.config.licenses.ldap.url=x"}, []string{"/tokenserver/config/licenses", "'ldap' not allowed"}},
		{[]string{"--set-string", "tokenserver.config.token_ttl=five minutes"}, []string{"/tokenserver/config/token_ttl", "pattern"}},
		{[]string{"--set", "tokenserver.config.token_ttl=300"}, []string{"/tokenserver/config/token_ttl", "want null or string"}},
		{[]string{"--set", "tokenserver.config.rate_limit.per_user_burst=lots"}, []string{"/tokenserver/config/rate_limit/per_user_burst", "want null or integer"}},
		{[]string{"--set-string", "gateway.config.access_log=yes"}, []string{"/gateway/config/access_log", "want null or boolean"}},
		{[]string{"--set", "gateway.config.trusted_proxies=10.0.0.0/8"}, []string{"/gateway/config/trusted_proxies", "want null or array"}},
		{[]string{"--set", "gateway.config.metrics=on"}, []string{"/gateway/config/metrics", "want null or object"}},
		{[]string{"--set", "networkPolicy.database.to[0].podSelektor.app=pg"}, []string{"/networkPolicy/database/to/0", "'podSelektor' not allowed"}},
		{[]string{"--set", "tokenserver.migrationJob.enable=false"}, []string{"/tokenserver/migrationJob", "'enable' not allowed"}},
	} {
		out, err := render(t, h, "", tc.args...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(out, w) {
				t.Errorf("helm template %v: err %v, output lacks %q:\n%s", tc.args, err, w, out)
				break
			}
		}
	}
	// helm install, as an operator runs it (--dry-run=client: no cluster).
	out, err := run(t, h, "install", release, chartDir, "--namespace", namespace, "--dry-run=client",
		"--set", "tokenserver.config.licenses.http.usernme_path=user.email")
	if err == nil || !strings.Contains(out, "INSTALLATION FAILED") || !strings.Contains(out, "'usernme_path' not allowed") {
		t.Errorf("helm install with a misspelt key: err %v\n%s", err, out)
	}
	// What the services accept renders: null drops a default key (Helm)
	// or leaves a key unset (the service), in every config block; a
	// duration is a string ("0" too: the decoder refuses the number 0).
	mustRender(t, h, "", "--set-json", `gateway.config.trusted_proxies=null`, "--set-json", `tokenserver.config.rate_limit={"per_user_burst":null,"disabled":false}`,
		"--set", "gateway.config.upstream.dial_timeout=1.5s", "--set-string", "tokenserver.config.licenses.cache_ttl=0")
}

// The Kubernetes objects the values pass through (the pods' security
// contexts, tolerations, environment variables) are closed objects in the
// schema, listing exactly the fields of their k8s.io/api types: a misspelt
// field fails at `helm template` instead of being dropped or refused by
// the API server half-way through an install. A new field in k8s.io/api
// fails here until the schema lists it.
func TestSchemaKubernetesObjects(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Definitions map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	for def, typ := range map[string]reflect.Type{
		"podSecurityContext": reflect.TypeFor[corev1.PodSecurityContext](),
		"securityContext":    reflect.TypeFor[corev1.SecurityContext](),
		"toleration":         reflect.TypeFor[corev1.Toleration](),
		"envVar":             reflect.TypeFor[corev1.EnvVar](),
		"peer":               reflect.TypeFor[networkingv1.NetworkPolicyPeer](),
	} {
		var want []string
		for i := range typ.NumField() {
			want = append(want, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
		}
		slices.Sort(want)
		got := slices.Sorted(maps.Keys(schema.Definitions[def].Properties))
		if !slices.Equal(got, want) {
			t.Errorf("definitions.%s lists %v; %s has %v", def, got, typ, want)
		}
	}
	h := helm(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "securityContext.readOnlyRootFilesytem=true"}, "'readOnlyRootFilesytem' not allowed"},
		{[]string{"--set", "podSecurityContext.runAsUser=nobody"}, "/podSecurityContext/runAsUser"},
		{[]string{"--set", "tokenserver.tolerations[0].efect=NoSchedule"}, "'efect' not allowed"},
		{[]string{"--set-json", `gateway.env=[{"value":"x"}]`}, "missing property 'name'"},
	} {
		if out, err := render(t, h, "", tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: err %v, output lacks %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}
