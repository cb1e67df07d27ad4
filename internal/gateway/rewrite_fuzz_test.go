package gateway

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzRewriteURL feeds arbitrary Location and Link values through the
// rewriting of upstream URLs to the client's view. Nothing panics; a URL on
// the upstream's host (or a relative one) comes back without scheme, host
// or user info, and without the repository prefix; a URL on another host
// (ECR's S3 redirects) and everything of a Link outside its <…> come back
// untouched.
func FuzzRewriteURL(f *testing.F) {
	const upstream = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"
	for _, s := range []string{
		upstream + "/v2/acme/stable/app/blobs/sha256:ab?a=b",
		"/v2/acme/stable/app/tags/list?last=v1&n=1",
		"https://s3.example.com/v2/acme/x?X-Amz-Signature=1",
		"https://user:pw@123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/acme/x",
		"/v2/acme%2Fx", "//evil.example.com/v2/acme/x", "http://[::1", "", "<", "</v2/acme/x>; rel=\"next\"",
		"<" + upstream + "/v2/_catalog?last=acme/stable/a&n=2>; rel=\"next\"", "<>>< ", "/v2/acme/../acme/x",
	} {
		f.Add(s)
	}
	up := &upstreamProxy{upstream: mustParse(f, upstream), prefix: "acme/"}
	f.Fuzz(func(t *testing.T, s string) {
		got := up.clientURL(s)
		if in, err := url.Parse(s); err == nil {
			foreign := in.Opaque != "" || (in.Scheme != "" && (in.Scheme != up.upstream.Scheme || in.Host != up.upstream.Host)) ||
				(in.Scheme == "" && in.Host != "" && in.Host != up.upstream.Host)
			if foreign {
				if got != s {
					t.Fatalf("clientURL(%q) = %q: another host's URL changed", s, got)
				}
			} else {
				out, err := url.Parse(got)
				if err != nil {
					t.Fatalf("clientURL(%q) = %q, not a URL: %v", s, got, err)
				}
				if out.Host != "" || out.User != nil || (out.Scheme != "" && out.Scheme != in.Scheme) {
					t.Fatalf("clientURL(%q) = %q keeps the upstream's host or user", s, got)
				}
				if rest, ok := strings.CutPrefix(in.Path, "/v2/acme/"); ok && out.Path != "/v2/"+rest {
					t.Fatalf("clientURL(%q) = %q: path %q, want /v2/%s", s, got, out.Path, rest)
				}
			}
		}
		link := up.rewriteLink(s)
		i, j := strings.IndexByte(s, '<'), strings.IndexByte(s, '>')
		if i < 0 || j < i {
			if link != s {
				t.Fatalf("rewriteLink(%q) = %q: changed a value without <…>", s, link)
			}
			return
		}
		if !strings.HasPrefix(link, s[:i+1]) || !strings.HasSuffix(link, s[j:]) {
			t.Fatalf("rewriteLink(%q) = %q: changed what is outside <…>", s, link)
		}
	})
}
