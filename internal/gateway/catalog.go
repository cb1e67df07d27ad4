package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
	"github.com/acme/registry-gateway/pkg/upstream"
)

// RepositoryLister lists every repository of the upstream, with the
// upstream's names (prefix included).
type RepositoryLister interface {
	Repositories(ctx context.Context) ([]string, error)
}

var (
	_ RepositoryLister = upstream.RepositoryLister(nil)
	_ RepositoryLister = (*RegistryLister)(nil)
)

// maxCatalogRepos bounds what a lister collects, so that a misbehaving
// upstream cannot grow the gateway's memory without end.
const maxCatalogRepos = 100_000

var errTooManyRepos = fmt.Errorf("upstream lists more than %d repositories", maxCatalogRepos)

// RegistryLister reads a plain registry's own /v2/_catalog, page by page.
// Client must put the upstream credential on its requests.
type RegistryLister struct {
	Client *http.Client
	Base   *url.URL
}

// maxCatalogPage bounds one upstream catalog page.
const maxCatalogPage = 8 << 20

// Repositories implements RepositoryLister.
func (l *RegistryLister) Repositories(ctx context.Context) ([]string, error) {
	next := l.Base.JoinPath("/v2/_catalog")
	next.RawQuery = "n=1000"
	var names []string
	for next != nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := l.Client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("upstream catalog: %w", err)
		}
		var page struct {
			Repositories []string `json:"repositories"`
		}
		err = decodeBounded(resp, &page, maxCatalogPage)
		if err != nil {
			return nil, fmt.Errorf("upstream catalog: %w", err)
		}
		names = append(names, page.Repositories...)
		if len(names) > maxCatalogRepos {
			return nil, errTooManyRepos
		}
		next = nextLink(next, resp.Header.Get("Link"))
	}
	return names, nil
}

func decodeBounded(resp *http.Response, v any, limit int64) error {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return errors.New("answer too large")
	}
	return json.Unmarshal(data, v)
}

// nextLink resolves a `<url>; rel="next"` Link header against base; nil when
// there is none or it leaves the upstream's host.
func nextLink(base *url.URL, link string) *url.URL {
	for part := range strings.SplitSeq(link, ",") {
		target, params, ok := strings.Cut(part, ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		target = strings.TrimSpace(target)
		if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			continue
		}
		u, err := base.Parse(target[1 : len(target)-1])
		if err != nil || u.Host != base.Host {
			return nil
		}
		return u
	}
	return nil
}

// catalog answers /v2/_catalog from the upstream's repository list, reused
// for ttl: the prefix stripped, repositories outside it dropped, filtered to
// the token's channels, paginated with n and last.
type catalog struct {
	lister RepositoryLister
	prefix string
	ttl    time.Duration
	clock  func() time.Time

	group singleflight.Group
	mu    sync.Mutex
	names []string // client names, sorted
	at    time.Time
}

// maxCatalogEntries is the largest page; a bigger n gets this many.
const maxCatalogEntries = 1000

var errCatalogUnavailable = httpx.Errorf(http.StatusBadGateway, httpx.CodeUnavailable, "upstream repository list unavailable")

func (c *catalog) serve(w http.ResponseWriter, r *http.Request, claims *auth.Claims) error {
	q := r.URL.Query()
	n := maxCatalogEntries
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			// distribution's PAGINATION_NUMBER_INVALID is not among
			// the spec's codes; UNSUPPORTED is its code for an invalid
			// set of parameters.
			return httpx.Errorf(http.StatusBadRequest, httpx.CodeUnsupported, "invalid number of results requested")
		}
		n = min(v, maxCatalogEntries)
	}
	last := q.Get("last")

	all, err := c.list(r.Context())
	if err != nil {
		e := *errCatalogUnavailable
		e.Err = err
		return &e
	}
	start := sort.SearchStrings(all, last)
	if start < len(all) && all[start] == last {
		start++
	}
	page := make([]string, 0, min(n, len(all)-start))
	more := false
	for _, name := range all[start:] {
		if !claims.HoldsChannel(auth.Channel(name)) {
			continue
		}
		if len(page) == n {
			more = true
			break
		}
		page = append(page, name)
	}
	if more && len(page) > 0 {
		next := url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}
		w.Header().Set("Link", `</v2/_catalog?`+next.Encode()+`>; rel="next"`)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string][]string{"repositories": page})
	return nil
}

// list returns the client-visible names, sorted, fetching them when the
// cached list is older than ttl; concurrent callers share one fetch.
func (c *catalog) list(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	names, at := c.names, c.at
	c.mu.Unlock()
	if names != nil && c.clock().Sub(at) < c.ttl {
		return names, nil
	}
	ch := c.group.DoChan("", func() (any, error) {
		// Shared by every waiting caller: not bound to one caller's context.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		upstream, err := c.lister.Repositories(fctx)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(upstream))
		for _, u := range upstream {
			if name, ok := strings.CutPrefix(u, c.prefix); ok && name != "" && auth.IsRepositoryPath(name) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		c.mu.Lock()
		c.names, c.at = names, c.clock()
		c.mu.Unlock()
		return names, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]string), nil
	}
}
