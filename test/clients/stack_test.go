package clients

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/devstack"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

// The demo stack's upstream credential (deploy/gateway.yaml,
// deploy/upstream.password): what the vendor pushes with.
const upstreamUser = "upstream"

// unlicensedMessage is what the gateway tells a customer asking for the
// beta channel, which the demo account does not hold.
const unlicensedMessage = "does not grant pull on channel 'beta'"

// stack is the demo stack for one test: the gateway at GatewayHost, its
// upstream at upstream (host:port), the demo images pushed.
type stack struct {
	*devstack.Stack
	upstream, upstreamPassword string
}

// startStack runs the demo stack on free ports for the test's duration,
// from a copy of the committed configuration; with referrersAPI its
// upstream answers the referrers API (referrersFixture).
func startStack(t *testing.T, referrersAPI bool) *stack {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"deploy/tokenserver.yaml", "deploy/gateway.yaml", "deploy/licenses.yaml",
		"deploy/upstream.htpasswd", "deploy/upstream.password"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	password, err := os.ReadFile(filepath.Join(dir, "deploy/upstream.password"))
	if err != nil {
		t.Fatal(err)
	}
	opts := devstack.Options{
		Dir: dir, GatewayAddr: "127.0.0.1:0", TokenServerAddr: "127.0.0.1:0", UpstreamAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if referrersAPI {
		opts.UpstreamHandler = func(reg http.Handler) http.Handler { return newReferrersFixture(reg) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := devstack.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := st.Wait(); err != nil {
			t.Errorf("stack: %v", err)
		}
	})
	return &stack{Stack: st, upstream: strings.TrimPrefix(st.UpstreamURL, "http://"),
		upstreamPassword: strings.TrimSpace(string(password))}
}

// digest is the digest of a demo image, "stable/hello:1.0" or the like.
func (s *stack) digest(t *testing.T, ref string) string {
	t.Helper()
	d, ok := s.Images[s.GatewayHost+"/"+ref]
	if !ok {
		t.Fatalf("no demo image %s in %v", ref, s.Images)
	}
	return d
}

// tool is the path of a CLI that scripts/<script> builds and caches; the
// test skips without it, or fails when require (e.g. REQUIRE_ORAS) is 1.
func tool(t *testing.T, script, require string) string {
	return testutil.CachedTool(t, repoRoot, script, "", require)
}

// clientEnv is the environment a CLI runs in: the test's own, without
// anything that would send it elsewhere (proxies) or lend it a user's
// logins and configuration (HOME, DOCKER_CONFIG, XDG dirs), plus extra.
func clientEnv(home string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "DOCKER_CONFIG", "HOME", "REGISTRY_AUTH_FILE",
			"XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR":
			continue
		}
		env = append(env, kv)
	}
	return append(env, append([]string{"HOME=" + home}, extra...)...)
}

// run runs a CLI in dir with env (clientEnv's) and stdin, bounded in time,
// and returns its combined output.
func run(t *testing.T, dir string, env []string, stdin, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRun is run for a command that must succeed.
func mustRun(t *testing.T, dir string, env []string, stdin, bin string, args ...string) string {
	t.Helper()
	out, err := run(t, dir, env, stdin, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

// refused runs a command that the gateway must refuse for the beta
// channel; named, the client's output must name the channel.
func refused(t *testing.T, named bool, dir string, env []string, bin string, args ...string) {
	t.Helper()
	out, err := run(t, dir, env, "", bin, args...)
	if err == nil {
		t.Errorf("%s %s succeeded for beta:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
		return
	}
	if named && !strings.Contains(out, unlicensedMessage) {
		t.Errorf("%s %s: the refusal does not name the channel (%q):\n%s", filepath.Base(bin), strings.Join(args, " "), unlicensedMessage, out)
	}
}

// dockerConfig writes a docker config.json into dir with a login for each
// host (host, user, password, …), for the clients that read one (cosign,
// crane, oras), and returns dir.
func dockerConfig(t *testing.T, dir string, logins ...string) string {
	t.Helper()
	auths := map[string]map[string]string{}
	for i := 0; i+2 < len(logins); i += 3 {
		auths[logins[i]] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(logins[i+1] + ":" + logins[i+2]))}
	}
	data, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// offline is what a client's environment gets so that nothing but the
// stack on loopback is reachable: every proxied request (all but
// NO_PROXY's loopback names) goes to a listener that counts the attempt
// and closes the connection. The returned count says how many were made.
func offline(t *testing.T) ([]string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			c.Close()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	proxy := "http://" + ln.Addr().String()
	return []string{"HTTPS_PROXY=" + proxy, "HTTP_PROXY=" + proxy, "ALL_PROXY=" + proxy,
		"NO_PROXY=localhost,127.0.0.1"}, &attempts
}

// referrersFixture puts the OCI referrers API in front of a distribution
// registry, as the distribution spec describes it: a manifest pushed with a
// subject is answered with OCI-Subject (so that clients do not also write
// the tag schema's index) and listed, by GET /v2/<name>/referrers/<digest>,
// in an image index of descriptors with their artifactType and
// annotations, filtered by ?artifactType= (and then OCI-Filters-Applied).
type referrersFixture struct {
	next http.Handler

	mu   sync.Mutex
	refs map[string][]referrer // name@subject digest → its referrers
}

type referrer struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int               `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func newReferrersFixture(next http.Handler) *referrersFixture {
	return &referrersFixture{next: next, refs: map[string][]referrer{}}
}

func (f *referrersFixture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, _ := strings.CutPrefix(r.URL.Path, "/v2/")
	j := strings.LastIndexByte(rest, '/')
	i := -1
	if j > 0 {
		i = strings.LastIndexByte(rest[:j], '/')
	}
	if i < 0 {
		f.next.ServeHTTP(w, r)
		return
	}
	name, verb, last := rest[:i], rest[i+1:j], rest[j+1:]
	switch {
	case verb == "referrers" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		f.list(w, r, name, last)
	case verb == "manifests" && r.Method == http.MethodPut:
		f.put(w, r, name)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// authorized asks the registry whether r's credential may read: a GET of
// /v2/ with it. On a refusal the registry's answer is written.
func (f *referrersFixture) authorized(w http.ResponseWriter, r *http.Request) bool {
	probe := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	probe.Header.Set("Authorization", r.Header.Get("Authorization"))
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, probe)
	if rec.Code == http.StatusOK {
		return true
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	return false
}

func (f *referrersFixture) list(w http.ResponseWriter, r *http.Request, name, subject string) {
	if !f.authorized(w, r) {
		return
	}
	f.mu.Lock()
	all := append([]referrer(nil), f.refs[name+"@"+subject]...)
	f.mu.Unlock()
	manifests := []referrer{}
	at := r.URL.Query().Get("artifactType")
	for _, d := range all {
		if at == "" || d.ArtifactType == at {
			manifests = append(manifests, d)
		}
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func (f *referrersFixture) put(w http.ResponseWriter, r *http.Request, name string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	var m struct {
		MediaType    string `json:"mediaType"`
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
		Annotations map[string]string `json:"annotations"`
	}
	if rec.Code == http.StatusCreated && json.Unmarshal(body, &m) == nil && m.Subject != nil {
		d := referrer{MediaType: m.MediaType, Digest: rec.Header().Get("Docker-Content-Digest"), Size: len(body),
			ArtifactType: m.ArtifactType, Annotations: m.Annotations}
		if d.MediaType == "" {
			d.MediaType = r.Header.Get("Content-Type")
		}
		if d.ArtifactType == "" {
			d.ArtifactType = m.Config.MediaType
		}
		key := name + "@" + m.Subject.Digest
		f.mu.Lock()
		list := f.refs[key]
		if !containsDigest(list, d.Digest) {
			f.refs[key] = append(list, d)
		}
		f.mu.Unlock()
		rec.Header().Set("OCI-Subject", m.Subject.Digest)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func containsDigest(list []referrer, d string) bool {
	for _, x := range list {
		if x.Digest == d {
			return true
		}
	}
	return false
}
