// Package pull is the benchmark's headline workload: one `docker pull` of a
// multi-platform image as docker sends it — a token request with Basic
// credentials, HEAD then GET of the index by tag, the platform's manifest by
// digest, the config blob and every layer, each blob answered with a
// redirect to the blob store (as ECR answers) that the client follows, as
// docker does — on kept-alive connections, with the accounting of each pull.
package pull

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/acme/registry-gateway/bench/loadgen"
)

// Blob is one blob of the image.
type Blob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Image is what one pull fetches: the index by tag, the manifest of the
// platform the client runs on, its config and layers.
type Image struct {
	Repo           string `json:"repo"`
	Tag            string `json:"tag"`
	IndexDigest    string `json:"index_digest"`
	IndexType      string `json:"index_type"`
	IndexSize      int64  `json:"index_size"`
	Platform       string `json:"platform"`
	Platforms      int    `json:"platforms"`
	ManifestDigest string `json:"manifest_digest"`
	ManifestType   string `json:"manifest_type"`
	ManifestSize   int64  `json:"manifest_size"`
	Config         Blob   `json:"config"`
	Layers         []Blob `json:"layers"`
}

// Requests is the number of requests of one pull to the registry (or the
// proxy in front of it), token request included when tokens are asked.
func (im *Image) Requests(token bool) int {
	n := 3 + 1 + len(im.Layers) // HEAD index, GET index, GET manifest; config; layers
	if token {
		n++
	}
	return n
}

// Bytes is the body bytes of one pull, token answer excluded.
func (im *Image) Bytes() int64 {
	n := im.IndexSize + im.ManifestSize + im.Config.Size
	for _, l := range im.Layers {
		n += l.Size
	}
	return n
}

// Auth is how a client authenticates to a contender.
type Auth struct {
	// Header is a header line ("Authorization: Basic …") sent on the token
	// request when TokenPath is set, else on every registry request (a
	// registry that challenges for Basic, or none at all when empty).
	Header string
	// TokenPath is the path and query of the token request, on the
	// contender's address (the gateway forwards /token); empty: none. Its
	// answer's token is then sent as a Bearer on every registry request.
	TokenPath string
}

// Stats count what pulls did.
type Stats struct {
	Pulls     int64
	Requests  int64 // to the contender, token requests included
	Redirects int64 // blob answers that were redirects, each followed
	Bytes     int64 // body bytes of manifests and blobs
	// Dials are the connections opened, to the contender and to the blob
	// store: a handful per client while both keep connections alive.
	Dials int64
	// Time is the time spent in each step of the pulls (see StepNames),
	// summed, so that where a contender adds latency shows.
	Time [NumSteps]time.Duration `json:"-"`
}

// The steps of a pull, as Stats.Time counts them.
const (
	StepToken = iota
	StepHeadIndex
	StepGetIndex
	StepGetManifest
	StepBlob   // the blob request to the contender (a redirect, usually)
	StepFollow // the redirect followed to the blob store
	NumSteps
)

// StepNames name the steps of Stats.Time.
var StepNames = [NumSteps]string{"token", "HEAD index", "GET index", "GET manifest", "blob", "follow"}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Pulls += o.Pulls
	s.Requests += o.Requests
	s.Redirects += o.Redirects
	s.Bytes += o.Bytes
	s.Dials += o.Dials
	for i, d := range o.Time {
		s.Time[i] += d
	}
}

// Client pulls Image from Addr, as one docker client does, on its own
// kept-alive connections: one to the contender and one per blob store host.
type Client struct {
	addr  string
	im    *Image
	auth  Auth
	reg   *loadgen.Conn
	hosts map[string]*loadgen.Conn
	buf   bytes.Buffer
	Stats Stats
}

// NewClient returns a client of addr (host:port, loopback only).
func NewClient(addr string, im *Image, auth Auth) (*Client, error) {
	reg, err := loadgen.NewConn(addr, loadgen.RequestTimeout)
	if err != nil {
		return nil, err
	}
	return &Client{addr: addr, im: im, auth: auth, reg: reg, hosts: map[string]*loadgen.Conn{}}, nil
}

// Close closes every connection of the client and sets Stats.Dials.
func (c *Client) Close() {
	c.reg.Close()
	dials := c.reg.Dials()
	for _, h := range c.hosts {
		h.Close()
		dials += h.Dials()
	}
	c.Stats.Dials = int64(dials)
}

// maxTokenAnswer bounds the token answer read.
const maxTokenAnswer = 64 << 10

// Pull makes one pull and returns the body bytes it received.
func (c *Client) Pull(ctx context.Context) (int64, error) {
	var st Stats
	authz := c.auth.Header
	if c.auth.TokenPath != "" {
		start := time.Now()
		tok, err := c.token(ctx, &st)
		st.Time[StepToken] += time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("token: %w", err)
		}
		authz = "Authorization: Bearer " + tok
	}
	var hdr []string
	if authz != "" {
		hdr = append(hdr, authz)
	}
	im := c.im
	base := "/v2/" + im.Repo
	byTag := base + "/manifests/" + im.Tag
	accept := "Accept: " + im.IndexType + ", " + im.ManifestType
	if err := c.get(ctx, &st, StepHeadIndex, loadgen.RenderHEAD(c.addr, byTag, append(hdr, accept)...), true, -1, "HEAD index"); err != nil {
		return 0, err
	}
	if err := c.get(ctx, &st, StepGetIndex, loadgen.RenderGET(c.addr, byTag, append(hdr, accept)...), false, im.IndexSize, "GET index"); err != nil {
		return 0, err
	}
	if err := c.get(ctx, &st, StepGetManifest, loadgen.RenderGET(c.addr, base+"/manifests/"+im.ManifestDigest, append(hdr, "Accept: "+im.ManifestType)...), false, im.ManifestSize, "GET manifest"); err != nil {
		return 0, err
	}
	for i, b := range append([]Blob{im.Config}, im.Layers...) {
		what := "config"
		if i > 0 {
			what = fmt.Sprintf("layer %d", i)
		}
		if err := c.blob(ctx, &st, base+"/blobs/"+b.Digest, hdr, b.Size, what); err != nil {
			return 0, err
		}
	}
	st.Pulls = 1
	c.Stats.Add(st)
	return st.Bytes, nil
}

// token asks for a token as docker does and returns it.
func (c *Client) token(ctx context.Context, st *Stats) (string, error) {
	c.buf.Reset()
	var hdr []string
	if c.auth.Header != "" {
		hdr = append(hdr, c.auth.Header)
	}
	st.Requests++
	resp, err := c.reg.Do(ctx, loadgen.RenderGET(c.addr, c.auth.TokenPath, hdr...), false, &limitedBuffer{&c.buf, maxTokenAnswer})
	if err != nil {
		return "", err
	}
	if err := loadgen.ExpectStatus(resp, http.StatusOK); err != nil {
		return "", err
	}
	var ans struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(c.buf.Bytes(), &ans); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	if ans.Token == "" {
		ans.Token = ans.AccessToken
	}
	if ans.Token == "" {
		return "", errors.New("answer without a token")
	}
	return ans.Token, nil
}

// get sends raw to the contender, expects 200 and, when want >= 0, a body
// of want bytes.
func (c *Client) get(ctx context.Context, st *Stats, step int, raw []byte, head bool, want int64, what string) error {
	st.Requests++
	start := time.Now()
	resp, err := c.reg.Do(ctx, raw, head, nil)
	st.Time[step] += time.Since(start)
	if err == nil {
		err = loadgen.ExpectStatus(resp, http.StatusOK)
	}
	if err == nil && want >= 0 && resp.Bytes != want {
		err = fmt.Errorf("body of %d bytes, want %d", resp.Bytes, want)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	st.Bytes += resp.Bytes
	return nil
}

// blob GETs a blob; a redirect is followed without the registry's
// credential (docker drops it when the host changes), to a loopback host.
func (c *Client) blob(ctx context.Context, st *Stats, path string, hdr []string, size int64, what string) error {
	st.Requests++
	start := time.Now()
	resp, err := c.reg.Do(ctx, loadgen.RenderGET(c.addr, path, hdr...), false, nil)
	st.Time[StepBlob] += time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if isRedirect(resp.Status) {
		st.Redirects++
		start = time.Now()
		resp, err = c.follow(ctx, resp.Location)
		st.Time[StepFollow] += time.Since(start)
		if err != nil {
			return fmt.Errorf("%s: redirect: %w", what, err)
		}
	}
	if err := loadgen.ExpectStatus(resp, http.StatusOK); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.Bytes != size {
		return fmt.Errorf("%s: body of %d bytes, want %d", what, resp.Bytes, size)
	}
	st.Bytes += resp.Bytes
	return nil
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// follow GETs location (absolute, http, loopback) on that host's
// connection.
func (c *Client) follow(ctx context.Context, location string) (loadgen.Response, error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return loadgen.Response{}, fmt.Errorf("location %q is not an absolute http URL", location)
	}
	conn := c.hosts[u.Host]
	if conn == nil {
		if conn, err = loadgen.NewConn(u.Host, loadgen.RequestTimeout); err != nil {
			return loadgen.Response{}, err
		}
		c.hosts[u.Host] = conn
	}
	return conn.Do(ctx, loadgen.RenderGET(u.Host, u.RequestURI()), false, nil)
}

// limitedBuffer refuses to grow past n bytes.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.n {
		return 0, fmt.Errorf("answer longer than %d bytes", l.n)
	}
	return l.b.Write(p)
}

var _ io.Writer = (*limitedBuffer)(nil)

// NewOp is the pull as a load generator op: worker w is one client, with
// its own connections, authenticating with auth(w); the counts of its
// pulls (warm-up included) go to stats when the cell is done.
func NewOp(addr string, im *Image, auth func(w int) Auth, stats func(Stats)) loadgen.NewOp {
	return func(w int) (loadgen.Op, func(), error) {
		c, err := NewClient(addr, im, auth(w))
		if err != nil {
			return nil, nil, err
		}
		op := func(ctx context.Context, _ int) (int64, error) { return c.Pull(ctx) }
		return op, func() {
			c.Close()
			if stats != nil {
				stats(c.Stats)
			}
		}, nil
	}
}

// TokenPath is the path and query of docker's token request for pull on
// repo of service for account.
func TokenPath(account, repo, service string) string {
	return "/token?account=" + url.QueryEscape(account) + "&scope=" + url.QueryEscape("repository:"+repo+":pull") + "&service=" + url.QueryEscape(service)
}
