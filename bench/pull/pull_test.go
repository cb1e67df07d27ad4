package pull

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRegistry answers a pull of im as a registry behind ECR does: manifests
// itself, every blob a 307 to the s3 server. It records what it was asked.
type fakeRegistry struct {
	im    *Image
	s3    string
	token string // the token answer's body
	// blobTo, when set, is where blobs redirect instead of s3.
	blobTo string
	// short makes the S3 store answer one byte short.
	short bool
	mu    sync.Mutex
	log   []string // "METHOD path authorization"
}

func (f *fakeRegistry) record(host string, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, host+" "+r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
}

func (f *fakeRegistry) registry(w http.ResponseWriter, r *http.Request) {
	f.record("reg", r)
	im := f.im
	base := "/v2/" + im.Repo
	switch {
	case r.URL.Path == "/token":
		fmt.Fprint(w, f.token)
	case r.URL.Path == base+"/manifests/"+im.Tag:
		w.Header().Set("Content-Type", im.IndexType)
		w.Header().Set("Content-Length", fmt.Sprint(im.IndexSize))
		if r.Method == http.MethodGet {
			w.Write([]byte(strings.Repeat("i", int(im.IndexSize))))
		}
	case r.URL.Path == base+"/manifests/"+im.ManifestDigest:
		w.Write([]byte(strings.Repeat("m", int(im.ManifestSize))))
	case strings.HasPrefix(r.URL.Path, base+"/blobs/"):
		to := f.s3
		if f.blobTo != "" {
			to = f.blobTo
		}
		http.Redirect(w, r, to+"/"+strings.TrimPrefix(r.URL.Path, base+"/blobs/")+"?X-Amz-Signature=x", http.StatusTemporaryRedirect)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeRegistry) store(w http.ResponseWriter, r *http.Request) {
	f.record("s3", r)
	d := strings.TrimPrefix(r.URL.Path, "/")
	for _, b := range append([]Blob{f.im.Config}, f.im.Layers...) {
		if b.Digest == d {
			n := b.Size
			if f.short {
				n--
			}
			w.Write([]byte(strings.Repeat("b", int(n))))
			return
		}
	}
	http.NotFound(w, r)
}

func testImage() *Image {
	return &Image{
		Repo: "stable/multi", Tag: "latest",
		IndexDigest: "sha256:idx", IndexType: "application/vnd.docker.distribution.manifest.list.v2+json", IndexSize: 300,
		Platform: "linux/amd64", Platforms: 2,
		ManifestDigest: "sha256:man", ManifestType: "application/vnd.docker.distribution.manifest.v2+json", ManifestSize: 500,
		Config: Blob{"sha256:cfg", 100},
		Layers: []Blob{{"sha256:l1", 1000}, {"sha256:l2", 2000}},
	}
}

func start(t *testing.T, f *fakeRegistry) string {
	t.Helper()
	s3 := httptest.NewServer(http.HandlerFunc(f.store))
	t.Cleanup(s3.Close)
	f.s3 = s3.URL
	reg := httptest.NewServer(http.HandlerFunc(f.registry))
	t.Cleanup(reg.Close)
	return strings.TrimPrefix(reg.URL, "http://")
}

// A pull with a token asks for the token with Basic credentials, sends the
// token on every registry request, follows every blob redirect without
// them, and counts requests, redirects and bytes exactly.
func TestPullWithToken(t *testing.T) {
	im := testImage()
	f := &fakeRegistry{im: im, token: `{"token":"T0K","expires_in":300}`}
	addr := start(t, f)
	c, err := NewClient(addr, im, Auth{Header: "Authorization: Basic dTpw", TokenPath: TokenPath("u@x", im.Repo, "svc")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		n, err := c.Pull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != im.Bytes() {
			t.Errorf("pull returned %d bytes, want %d", n, im.Bytes())
		}
	}
	want := []string{
		"reg GET /token Basic dTpw",
		"reg HEAD /v2/stable/multi/manifests/latest Bearer T0K",
		"reg GET /v2/stable/multi/manifests/latest Bearer T0K",
		"reg GET /v2/stable/multi/manifests/sha256:man Bearer T0K",
		"reg GET /v2/stable/multi/blobs/sha256:cfg Bearer T0K",
		"s3 GET /sha256:cfg ",
		"reg GET /v2/stable/multi/blobs/sha256:l1 Bearer T0K",
		"s3 GET /sha256:l1 ",
		"reg GET /v2/stable/multi/blobs/sha256:l2 Bearer T0K",
		"s3 GET /sha256:l2 ",
	}
	if got := strings.Join(f.log, "\n"); got != strings.Join(append(want, want...), "\n") {
		t.Errorf("requests:\n%s\nwant (twice):\n%s", got, strings.Join(want, "\n"))
	}
	c.Close()
	st := c.Stats
	if st.Dials != 2 {
		t.Errorf("%d connections for two pulls; want one to the registry and one to S3, kept alive", st.Dials)
	}
	if st.Pulls != 2 || st.Requests != 2*int64(im.Requests(true)) || st.Redirects != 2*3 || st.Bytes != 2*im.Bytes() {
		t.Errorf("stats %+v; image: %d requests, %d bytes", st, im.Requests(true), im.Bytes())
	}
	if im.Requests(true) != 7 || im.Requests(false) != 6 || im.Bytes() != 3900 {
		t.Errorf("image accounting: %d / %d requests, %d bytes", im.Requests(true), im.Requests(false), im.Bytes())
	}
}

// Without a token step the header goes on every registry request (Basic
// to a registry that challenges for it), and never to the blob store.
func TestPullWithBasic(t *testing.T) {
	im := testImage()
	f := &fakeRegistry{im: im}
	addr := start(t, f)
	var total Stats
	newOp := NewOp(addr, im, func(int) Auth { return Auth{Header: "Authorization: Basic dTpw"} }, func(s Stats) { total.Add(s) })
	op, done, err := newOp(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	done()
	for _, l := range f.log {
		reg := strings.HasPrefix(l, "reg ")
		if strings.Contains(l, "/token") || reg != strings.HasSuffix(l, " Basic dTpw") {
			t.Errorf("request %q", l)
		}
	}
	if total.Pulls != 1 || total.Requests != int64(im.Requests(false)) || total.Redirects != 3 || total.Bytes != im.Bytes() {
		t.Errorf("stats %+v", total)
	}
}

// Every way a pull can go wrong is an error naming the step, and a failed
// pull is not counted.
func TestPullErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fakeRegistry, im *Image)
		want  string
	}{
		{"token answer without a token", func(f *fakeRegistry, _ *Image) { f.token = `{"expires_in":300}` }, "token: answer without a token"},
		{"token answer not JSON", func(f *fakeRegistry, _ *Image) { f.token = `<html>` }, "token: answer"},
		{"token answer too long", func(f *fakeRegistry, _ *Image) { f.token = `{"token":"` + strings.Repeat("x", maxTokenAnswer) + `"}` }, "longer than"},
		{"index of another size", func(_ *fakeRegistry, im *Image) { im.IndexSize++ }, "GET index: body of 300 bytes, want 301"},
		{"unknown manifest", func(_ *fakeRegistry, im *Image) { im.ManifestDigest = "sha256:other" }, "GET manifest: status 404"},
		{"short blob", func(f *fakeRegistry, _ *Image) { f.short = true }, "config: body of 99 bytes, want 100"},
		{"redirect off loopback", func(f *fakeRegistry, _ *Image) { f.blobTo = "http://203.0.113.1:80" }, "not a loopback address"},
		{"redirect relative", func(f *fakeRegistry, _ *Image) { f.blobTo = "ftp://127.0.0.1:1" }, "not an absolute http URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := testImage()
			f := &fakeRegistry{im: testImage(), token: `{"token":"T"}`}
			tc.setup(f, im)
			addr := start(t, f)
			c, err := NewClient(addr, im, Auth{TokenPath: "/token"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Pull(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Pull = %v, want %q", err, tc.want)
			}
			if c.Stats.Pulls != 0 || c.Stats.Requests != 0 {
				t.Errorf("a failed pull counted: %+v", c.Stats)
			}
		})
	}
	if _, err := NewClient("203.0.113.1:80", testImage(), Auth{}); err == nil {
		t.Error("client of a non-loopback address")
	}
}
