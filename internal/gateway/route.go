package gateway

import (
	"net/http"
	"strings"

	// go-digest (the manifest cache checks answers with it) only knows
	// the algorithms whose hashes are linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/distribution/reference"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

// RouteKind is what a /v2 request asks for.
type RouteKind uint8

// Route kinds; their String values label metrics.
const (
	RouteUnknown RouteKind = iota
	RouteBase
	RouteCatalog
	RouteManifest
	RouteBlob
	RouteTags
	RouteReferrers
)

var routeNames = [...]string{"unknown", "base", "catalog", "manifest", "blob", "tags", "referrers"}

func (k RouteKind) String() string {
	if int(k) < len(routeNames) {
		return routeNames[k]
	}
	if k >= routeToken && int(k-routeToken) < extraRoutes {
		return extraRouteNames[k-routeToken]
	}
	return "unknown"
}

// Route is a parsed /v2 path.
type Route struct {
	Kind RouteKind
	// Name is the repository as the client names it (no upstream prefix).
	Name string
	// Reference is the tag or digest of a manifest, or the digest of a
	// blob or referrers request.
	Reference string
	// Suffix is the path after the name, starting with "/" (e.g.
	// "/manifests/latest"), so that the upstream path can be built without
	// re-encoding anything.
	Suffix string
	// Upstream is the repository as the upstream names it (the prefix put
	// before Name), set by ForUpstream.
	Upstream string
	// upstreamPath is UpstreamPath for the prefix ForUpstream was given,
	// built with Upstream in one string.
	upstreamPath string
}

// String is the route's kind, the label of its metrics and log lines.
func (r Route) String() string { return r.Kind.String() }

// errUpstreamNameTooLong: a name that is valid here but not on the upstream
// once the repository prefix is put before it.
var errUpstreamNameTooLong = httpx.Errorf(http.StatusBadRequest, httpx.CodeNameInvalid, "repository name too long")

// ForUpstream is the route for an upstream whose repositories are prefix
// plus the client's name: Upstream set, and refused (the route returned as
// it was, for the log) when the prefixed name is longer than a registry
// accepts.
func (r Route) ForUpstream(prefix string) (Route, error) {
	if r.Name == "" {
		return r, nil
	}
	if len(prefix)+len(r.Name) > reference.RepositoryNameTotalLengthMax {
		return r, errUpstreamNameTooLong
	}
	if r.Suffix == "" {
		r.Upstream = prefix + r.Name
		return r, nil
	}
	// One string for the upstream name and path: this runs for every
	// request.
	r.upstreamPath = "/v2/" + prefix + r.Name + r.Suffix
	r.Upstream = r.upstreamPath[len("/v2/") : len("/v2/")+len(prefix)+len(r.Name)]
	return r, nil
}

// Scope is the token scope a request of this route needs, "" for the base
// route.
func (r Route) Scope() string {
	switch r.Kind {
	case RouteBase, RouteUnknown:
		return ""
	case RouteCatalog:
		return "registry:catalog:*"
	}
	return "repository:" + r.Name + ":pull"
}

// maxPathLen bounds a /v2 path: a 255-character name, a 128-character tag or
// a sha512 digest and the fixed parts fit well within it.
const maxPathLen = 512

// pathComponent is the grammar of one path component as a regular
// expression, for the configuration's repository prefix (checked once).
const pathComponent = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`

// validTag matches reference.TagRegexp anchored: [\w][\w.-]{0,127}.
func validTag(tag string) bool {
	if tag == "" || len(tag) > 128 || !isWordByte(tag[0]) {
		return false
	}
	for i := 1; i < len(tag); i++ {
		if b := tag[i]; !isWordByte(b) && b != '.' && b != '-' {
			return false
		}
	}
	return true
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}

// validDigest reports whether d is a digest go-digest's Validate accepts
// with sha256 and sha512 linked in: sha256, sha384 or sha512, then the
// hash's lower-case hex.
func validDigest(d string) bool {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return false
	}
	switch {
	case alg == "sha256" && len(hex) == 64, alg == "sha384" && len(hex) == 96, alg == "sha512" && len(hex) == 128:
	default:
		return false
	}
	for i := 0; i < len(hex); i++ {
		if b := hex[i]; !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f') {
			return false
		}
	}
	return true
}

// Route errors, as the client sees them.
var (
	errRouteNotFound    = httpx.Errorf(http.StatusNotFound, httpx.CodeUnsupported, "unknown endpoint")
	errPathNotCanonical = httpx.Errorf(http.StatusBadRequest, httpx.CodeNameInvalid, "path is not canonical")
	errPathTooLong      = httpx.Errorf(http.StatusBadRequest, httpx.CodeNameInvalid, "path too long")
	errNameInvalid      = httpx.Errorf(http.StatusBadRequest, httpx.CodeNameInvalid, "invalid repository name")
	// A malformed tag (such as "-bad-") names a manifest that cannot
	// exist: 404 MANIFEST_UNKNOWN. The spec's pull section allows no
	// other reference than a digest or a tag of its grammar and answers a
	// manifest that does not exist with a 404; its codes have none for a
	// bad tag (TAG_INVALID is a legacy schema1 push code it says clients
	// must not depend on), and distribution's router matches no such path
	// and answers 404 too.
	errTagInvalid    = httpx.Errorf(http.StatusNotFound, httpx.CodeManifestUnknown, "manifest unknown")
	errDigestInvalid = httpx.Errorf(http.StatusBadRequest, httpx.CodeDigestInvalid, "invalid digest")
)

// ParseRoute parses the escaped path of a request (r.URL.EscapedPath()) into
// a Route, refusing anything that is not the one canonical spelling of a
// registry API path: percent-encoding of any kind (no valid name, tag or
// digest needs it, so "%2F" or "%2e" can only be an attempt to make the
// upstream see another path than the one checked here), empty or dot
// segments, upper case in names, over-long names, tags or paths.
//
// It is a pure function: the errors are *httpx.Error values shared by all
// callers, which must not change them.
func ParseRoute(escapedPath string) (Route, error) {
	if len(escapedPath) > maxPathLen {
		return Route{}, errPathTooLong
	}
	rest, ok := strings.CutPrefix(escapedPath, "/v2/")
	if !ok {
		if escapedPath == "/v2" {
			return Route{Kind: RouteBase}, nil
		}
		return Route{}, errRouteNotFound
	}
	if rest == "" {
		return Route{Kind: RouteBase}, nil
	}
	if strings.IndexByte(rest, '%') >= 0 {
		return Route{}, errPathNotCanonical
	}
	if rest == "_catalog" {
		return Route{Kind: RouteCatalog}, nil
	}
	// The last two segments say what is asked; everything before them is
	// the name. Distribution's router does the same with anchored patterns:
	// a name may itself contain a component called "manifests" or "blobs".
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return Route{}, errRouteNotFound
	}
	i := strings.LastIndexByte(rest[:j], '/')
	if i < 0 {
		return Route{}, errRouteNotFound
	}
	name, verb, last := rest[:i], rest[i+1:j], rest[j+1:]
	if err := checkSegments(rest); err != nil {
		return Route{}, err
	}
	r := Route{Name: name, Suffix: rest[i:]}
	switch verb {
	case "manifests":
		r.Kind, r.Reference = RouteManifest, last
		if strings.IndexByte(last, ':') >= 0 {
			if !validDigest(last) {
				return Route{}, errDigestInvalid
			}
		} else if !validTag(last) {
			return Route{}, errTagInvalid
		}
	case "blobs", "referrers":
		r.Kind, r.Reference = RouteBlob, last
		if verb == "referrers" {
			r.Kind = RouteReferrers
		}
		if !validDigest(last) {
			return Route{}, errDigestInvalid
		}
	case "tags":
		if last != "list" {
			return Route{}, errRouteNotFound
		}
		r.Kind = RouteTags
	default:
		return Route{}, errRouteNotFound
	}
	if len(name) > reference.RepositoryNameTotalLengthMax || !auth.IsRepositoryPath(name) {
		return Route{}, errNameInvalid
	}
	return r, nil
}

// checkSegments refuses empty and dot segments, which a client-side or
// upstream path cleaner would collapse into a different path than the one
// whose name was checked.
func checkSegments(p string) error {
	for {
		seg := p
		i := strings.IndexByte(p, '/')
		if i >= 0 {
			seg = p[:i]
		}
		if seg == "" || seg == "." || seg == ".." {
			return errPathNotCanonical
		}
		if i < 0 {
			return nil
		}
		p = p[i+1:]
	}
}

// UpstreamPath is the escaped path of the route on the upstream, with the
// repository prefix (e.g. "acme/") put before the name.
func (r Route) UpstreamPath(prefix string) string {
	switch r.Kind {
	case RouteBase:
		return "/v2/"
	case RouteCatalog:
		return "/v2/_catalog"
	}
	if p := r.upstreamPath; len(p) == len("/v2/")+len(prefix)+len(r.Name)+len(r.Suffix) &&
		strings.HasPrefix(p[len("/v2/"):], prefix) {
		return p
	}
	return "/v2/" + prefix + r.Name + r.Suffix
}
