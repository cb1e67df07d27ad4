package clients

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/devstack"
)

const (
	sbomType = "application/spdx+json"
	sbomFile = "sbom.spdx.json"
	sbomText = `{"spdxVersion":"SPDX-2.3","name":"hello"}`
)

// TestOras: the vendor attaches an SBOM to the stable image upstream with
// `oras attach`; the customer finds it with `oras discover` through the
// gateway and pulls it with `oras pull`, with an upstream without the
// referrers API (distribution: oras attached with the tag schema, and the
// gateway's plain 404 on the referrers route makes oras fall back to it)
// and with one that has it (the gateway passes the API's index and its
// filter on). beta's referrers are refused.
func TestOras(t *testing.T) {
	oras := tool(t, "oras.sh", "REQUIRE_ORAS")
	for _, tc := range []struct {
		name string
		api  bool
	}{{"upstream without referrers API", false}, {"upstream with referrers API", true}} {
		t.Run(tc.name, func(t *testing.T) { testOras(t, oras, tc.api) })
	}
}

func testOras(t *testing.T, oras string, api bool) {
	st := startStack(t, api)
	dir := t.TempDir()
	env := clientEnv(dir, "DOCKER_CONFIG="+filepath.Join(dir, "docker"))
	if err := os.WriteFile(filepath.Join(dir, sbomFile), []byte(sbomText), 0o644); err != nil {
		t.Fatal(err)
	}
	vendor := []string{"--plain-http", "-u", upstreamUser, "-p", st.upstreamPassword}
	customer := []string{"--plain-http", "-u", devstack.DemoUser, "-p", devstack.DemoToken}

	attached := map[string]string{}
	for _, repo := range []string{devstack.LicensedRepo, devstack.UnlicensedRepo} {
		subject := st.digest(t, repo+":1.0")
		out := mustRun(t, dir, env, "", oras, append([]string{"attach", "--artifact-type", sbomType, "--format", "json",
			st.upstream + "/" + repo + "@" + subject, sbomFile + ":application/spdx+json"}, vendor...)...)
		var desc struct{ Digest string }
		if err := json.Unmarshal([]byte(lastJSON(out)), &desc); err != nil || desc.Digest == "" {
			t.Fatalf("oras attach: %v\n%s", err, out)
		}
		attached[repo] = desc.Digest
	}
	// Which way oras attached: the tag schema's index exists upstream only
	// without the API.
	subject := st.digest(t, devstack.LicensedRepo+":1.0")
	tags := mustRun(t, dir, env, "", oras, append([]string{"repo", "tags", st.upstream + "/" + devstack.LicensedRepo}, vendor...)...)
	fallbackTag := strings.Replace(subject, ":", "-", 1)
	if hasTag := slices.Contains(strings.Fields(tags), fallbackTag); hasTag == api {
		t.Fatalf("upstream tags %q: tag schema index %s present = %v with referrers API = %v", tags, fallbackTag, hasTag, api)
	}

	ref := st.GatewayHost + "/" + devstack.LicensedRepo + "@" + subject
	discover := func(extra ...string) []string {
		t.Helper()
		out := mustRun(t, dir, env, "", oras, append(append([]string{"discover", "--format", "json", ref}, extra...), customer...)...)
		var v struct {
			Referrers []struct{ Digest, ArtifactType string } `json:"referrers"`
		}
		if err := json.Unmarshal([]byte(lastJSON(out)), &v); err != nil {
			t.Fatalf("oras discover: %v\n%s", err, out)
		}
		var found []string
		for _, r := range v.Referrers {
			found = append(found, r.ArtifactType+" "+r.Digest)
		}
		return found
	}
	want := sbomType + " " + attached[devstack.LicensedRepo]
	if got := discover(); !slices.Equal(got, []string{want}) {
		t.Errorf("oras discover through the gateway: %q, want %q", got, want)
	}
	if got := discover("--artifact-type", sbomType); !slices.Equal(got, []string{want}) {
		t.Errorf("oras discover --artifact-type %s: %q, want %q", sbomType, got, want)
	}
	if got := discover("--artifact-type", "application/vnd.example.other"); len(got) != 0 {
		t.Errorf("oras discover --artifact-type other: %q, want none", got)
	}

	out := filepath.Join(dir, "pulled")
	mustRun(t, dir, env, "", oras, append([]string{"pull", "-o", out,
		st.GatewayHost + "/" + devstack.LicensedRepo + "@" + attached[devstack.LicensedRepo]}, customer...)...)
	if got, err := os.ReadFile(filepath.Join(out, sbomFile)); err != nil || string(got) != sbomText {
		t.Errorf("oras pull through the gateway: %q, %v; want the attached SBOM", got, err)
	}

	// beta: refused, referrers and artifact alike. oras shows only the
	// status of a refused HEAD (discover resolves with one); a pull's GET
	// shows the gateway's message.
	beta := st.GatewayHost + "/" + devstack.UnlicensedRepo
	refused(t, false, dir, env, oras, append([]string{"discover", "--format", "json", beta + "@" + st.digest(t, devstack.UnlicensedRepo+":1.0")}, customer...)...)
	refused(t, true, dir, env, oras, append([]string{"pull", "-o", filepath.Join(dir, "beta"), beta + "@" + attached[devstack.UnlicensedRepo]}, customer...)...)
}

// lastJSON is the JSON object a command printed last (after any
// progress lines).
func lastJSON(out string) string {
	if i := strings.Index(out, "{"); i >= 0 {
		return out[i:]
	}
	return out
}
