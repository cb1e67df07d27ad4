package devstack

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
)

// The Done-when of the console in `make run` (LICENSES=sql): from the
// banner alone, the vendor signs in, creates a customer and hands them a
// sign-in link; the customer's page lists what they may pull (the real
// gateway's view, a token minted for them), and a pull with the commands
// as the page shows them works.
func TestConsoleFromBanner(t *testing.T) {
	t.Parallel()
	dir := copyDeploy(t)
	data, err := os.ReadFile(filepath.Join(repoRoot, SQLConfig))
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("dsn: data/accounts.db"), []byte("dsn: "+filepath.Join(dir, "accounts.db")), 1)
	if err := os.WriteFile(filepath.Join(dir, SQLConfig), data, 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := SQLDemoAccount(t.Context(), filepath.Join(dir, SQLConfig), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := startStack(t, func(o *Options) { o.Dir, o.TokenServerConfig, o.DemoToken = dir, SQLConfig, token })
	var banner bytes.Buffer
	st.WriteBanner(&banner)
	b := banner.String()
	if st.Console == nil || !strings.Contains(b, "web console "+st.Console.URL) || !strings.Contains(b, "sign in with the admin key "+st.Console.AdminKey) ||
		!strings.Contains(b, st.Console.CustomerLink) {
		t.Fatalf("banner:\n%s", b)
	}
	if fi, err := os.Stat(st.Console.AdminKeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin key file: %v %v", fi, err)
	}

	client := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar}
	}
	csrfRe := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	form := func(c *http.Client, page, action string, v url.Values) string {
		t.Helper()
		body := fetch(t, c, http.MethodGet, page, "", "")
		m := csrfRe.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s: no form token:\n%s", page, body)
		}
		v.Set("csrf", m[1])
		resp, err := c.PostForm(action, v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d\n%s", action, resp.StatusCode, out)
		}
		return string(out)
	}
	base := st.Console.URL

	// The vendor signs in with the printed key.
	vendor := client()
	if body := form(vendor, base+"sign-in", base+"sign-in/key", url.Values{"key": {st.Console.AdminKey}}); !strings.Contains(body, "make-run-") {
		t.Fatalf("vendor home:\n%s", body)
	}
	// The vendor creates a customer who may make their own tokens, and a
	// sign-in link for them (the admin API with the same key; the
	// console's vendor pages call the same operations).
	admin := func(method, path, body string, hdr ...string) string {
		t.Helper()
		return fetch(t, http.DefaultClient, method, st.AdminURL+"/admin/v1"+path, body, "Bearer "+st.Console.AdminKey, hdr...)
	}
	admin(http.MethodPost, "/accounts", `{"email":"carol@example.com","channels":["stable"]}`)
	admin(http.MethodPatch, "/accounts/carol@example.com", `{"self_service_tokens":true}`, "If-Match", "*")
	var link struct{ URL string }
	if err := json.Unmarshal([]byte(admin(http.MethodPost, "/accounts/carol@example.com/sign-in-links", "")), &link); err != nil || !strings.HasPrefix(link.URL, base+"link?t=") {
		t.Fatalf("link %q %v", link.URL, err)
	}

	// The customer opens the link and signs in.
	carol := client()
	secret, _ := url.ParseQuery(strings.TrimPrefix(link.URL, base+"link?"))
	home := form(carol, link.URL, base+"link", url.Values{"t": {secret.Get("t")}})
	for _, want := range []string{"carol@example.com", "<code>stable</code>", st.GatewayHost + "/" + LicensedRepo, "<code>1.0</code>"} {
		if !strings.Contains(home, want) {
			t.Errorf("customer page lacks %q:\n%s", want, home)
		}
	}
	if strings.Contains(home, UnlicensedRepo) {
		t.Error("the customer page lists the unlicensed repository")
	}
	// A token of their own, shown once, then the pull as the page says.
	page := form(carol, base+"customer/tokens", base+"customer/tokens", url.Values{"name": {"laptop"}})
	m := regexp.MustCompile(`<pre id="new-token"><code>([^<]+)</code>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no token:\n%s", page)
	}
	cmds := map[string]string{}
	for _, c := range regexp.MustCompile(`<pre id="(cmd-[a-z-]+)"><code>([^<]+)</code>`).FindAllStringSubmatch(home, -1) {
		cmds[c[1]] = html.UnescapeString(c[2])
	}
	login := regexp.MustCompile(`docker login (\S+) -u (\S+) --password-stdin`).FindStringSubmatch(cmds["cmd-docker-login"])
	pull, ok := strings.CutPrefix(cmds["cmd-docker-pull"], "docker pull ")
	if login == nil || !ok || login[1] != st.GatewayHost || login[2] != "carol@example.com" {
		t.Fatalf("commands %q", cmds)
	}
	if _, err := crane.Digest(pull, crane.WithAuth(&authn.Basic{Username: login[2], Password: m[1]}), crane.Insecure, crane.WithContext(t.Context())); err != nil {
		t.Fatalf("pull %s as the page says: %v", pull, err)
	}
}

// fetch sends a request and returns the body of a 2xx answer.
func fetch(t *testing.T, c *http.Client, method, u, body, auth string, hdr ...string) string {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d\n%s", method, u, resp.StatusCode, out)
	}
	return string(out)
}
