package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/pkg/auth"
)

// Bounds of what a customer's page reads from the gateway: enough for any
// real catalogue, little enough to render at once.
const (
	maxRepositories = 200
	maxTags         = 50
	// tagWorkers is how many tags/list requests run at once.
	tagWorkers = 8
	// maxRegistryBody bounds an answer of the gateway.
	maxRegistryBody = 4 << 20
)

// repository is one repository a customer may pull, with its tags.
type repository struct {
	Name string
	// Tags are newest first (see sortTags); at most maxTags.
	Tags []string
	// More counts the tags left out.
	More int
	// Err is why the tags could not be read.
	Err string
}

// registryView is what the gateway lets a customer see.
type registryView struct {
	Repositories []repository
	// Truncated: the catalogue had more than maxRepositories.
	Truncated bool
}

// errNoRegistry: console.registry_url is not configured.
var errNoRegistry = errors.New("console.registry_url is not configured")

// readRegistry reads, through the gateway, the repositories and tags lic
// may pull: the gateway filters its catalogue by the token's channels, so
// the customer sees exactly what a docker client with their credentials
// would. The tokens are minted for lic, never for anyone else.
func (c *Console) readRegistry(ctx context.Context, lic license.License) (registryView, error) {
	if c.cfg.RegistryURL == "" {
		return registryView{}, errNoRegistry
	}
	if len(lic.Channels) == 0 {
		return registryView{Repositories: []repository{}}, nil
	}
	base := strings.TrimSuffix(c.cfg.RegistryURL, "/")
	token, err := c.mint(ctx, lic, []auth.ResourceActions{{Type: auth.TypeRegistry, Name: auth.CatalogName, Actions: []string{auth.ActionAll}}})
	if err != nil {
		return registryView{}, err
	}
	var v registryView
	next := base + "/v2/_catalog?n=" + strconv.Itoa(maxRepositories)
	var names []string
	for next != "" && len(names) < maxRepositories {
		var page struct {
			Repositories []string `json:"repositories"`
		}
		link, err := c.getJSON(ctx, next, token, &page)
		if err != nil {
			return registryView{}, fmt.Errorf("console: the gateway's catalog: %w", err)
		}
		names = append(names, page.Repositories...)
		next = ""
		if link != "" {
			if u, err := url.Parse(base + "/"); err == nil {
				if ref, err := u.Parse(link); err == nil {
					next = ref.String()
				}
			}
		}
	}
	if len(names) > maxRepositories || next != "" {
		names, v.Truncated = names[:min(len(names), maxRepositories)], true
	}
	v.Repositories = make([]repository, len(names))
	// One token for each batch of repositories (a token names at most
	// auth.MaxScopes), tags read by a few workers at once.
	var wg sync.WaitGroup
	sem := make(chan struct{}, tagWorkers)
	for start := 0; start < len(names); start += auth.MaxScopes {
		batch := names[start:min(start+auth.MaxScopes, len(names))]
		scopes := make([]auth.ResourceActions, len(batch))
		for i, n := range batch {
			scopes[i] = auth.ResourceActions{Type: auth.TypeRepository, Name: n, Actions: []string{auth.ActionPull}}
		}
		tok, err := c.mint(ctx, lic, scopes)
		if err != nil {
			return registryView{}, err
		}
		for i, n := range batch {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int, name string) {
				defer wg.Done()
				defer func() { <-sem }()
				repo := repository{Name: name}
				var tags struct {
					Tags []string `json:"tags"`
				}
				if _, err := c.getJSON(ctx, base+"/v2/"+name+"/tags/list", tok, &tags); err != nil {
					repo.Err = "the tags could not be read"
				} else {
					repo.Tags = sortTags(tags.Tags)
					if len(repo.Tags) > maxTags {
						repo.Tags, repo.More = repo.Tags[:maxTags], len(repo.Tags)-maxTags
					}
				}
				v.Repositories[i] = repo
			}(start+i, n)
		}
	}
	wg.Wait()
	return v, nil
}

// getJSON GETs u with the bearer token into out and returns the Link
// header's next page, if any.
func (c *Console) getJSON(ctx context.Context, u, token string, out any) (next string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return "", fmt.Errorf("%s answered %s", req.URL.Path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRegistryBody)).Decode(out); err != nil {
		return "", fmt.Errorf("%s: %w", req.URL.Path, err)
	}
	if l := resp.Header.Get("Link"); l != "" {
		if i, j := strings.Index(l, "<"), strings.Index(l, ">"); i >= 0 && j > i && strings.Contains(l[j:], `rel="next"`) {
			next = l[i+1 : j]
		}
	}
	return next, nil
}

// sortTags orders tags newest first as far as their names tell: the
// registry API keeps no dates, and reading every manifest's config for one
// would cost a request per tag. "latest" comes first, then the others by
// version, highest first, comparing runs of digits as numbers (1.10 after
// 1.9), and names without digits last.
func sortTags(tags []string) []string {
	out := slices.Clone(tags)
	slices.SortFunc(out, func(a, b string) int {
		if a == b {
			return 0
		}
		if a == "latest" {
			return -1
		}
		if b == "latest" {
			return 1
		}
		da, db := strings.ContainsFunc(a, unicode.IsDigit), strings.ContainsFunc(b, unicode.IsDigit)
		if da != db {
			if da {
				return -1
			}
			return 1
		}
		return -naturalCompare(a, b)
	})
	return out
}

// naturalCompare compares a and b with runs of digits compared as numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			na, ra := digitsRun(a)
			nb, rb := digitsRun(b)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digitsRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
