package tokenserver

import (
	"testing"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/pkg/auth"
)

func TestGrant(t *testing.T) {
	t.Parallel()
	lic := license.License{Account: aliceUser, Channels: []string{"beta", "stable"}}
	tests := []struct {
		name    string
		scopes  []string
		lic     license.License
		want    []auth.ResourceActions
		catalog bool
	}{
		{name: "no scope (docker login)", lic: lic},
		{name: "pull in a held channel", scopes: []string{"repository:stable/app:pull"}, lic: lic,
			want: []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}}},
		{name: "nested path", scopes: []string{"repository:beta/team/app:pull"}, lic: lic,
			want: []auth.ResourceActions{{Type: "repository", Name: "beta/team/app", Actions: []string{"pull"}}}},
		{name: "channel not held", scopes: []string{"repository:nightly/app:pull"}, lic: lic},
		{name: "channel is the first component only", scopes: []string{"repository:app/stable:pull"}, lic: lic},
		{name: "prefix of a channel is not the channel", scopes: []string{"repository:stablex/app:pull"}, lic: lic},
		{name: "no licence at all", scopes: []string{"repository:stable/app:pull"}, lic: license.License{Account: aliceUser}},
		{name: "push, delete and * are never granted", scopes: []string{"repository:stable/app:push,delete"}, lic: lic},
		{name: "pull of pull,push", scopes: []string{"repository:stable/app:pull,push"}, lic: lic,
			want: []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}}},
		{name: "* yields pull only", scopes: []string{"repository:stable/app:*"}, lic: lic,
			want: []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}}},
		{name: "empty actions", scopes: []string{"repository:stable/app:"}, lic: lic},
		{name: "class is kept", scopes: []string{"repository(plugin):stable/app:pull"}, lic: lic,
			want: []auth.ResourceActions{{Type: "repository", Class: "plugin", Name: "stable/app", Actions: []string{"pull"}}}},
		{name: "catalog for any account", scopes: []string{"registry:catalog:*"}, lic: license.License{Account: aliceUser},
			want: []auth.ResourceActions{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}, catalog: true},
		{name: "catalog needs *", scopes: []string{"registry:catalog:pull"}, lic: lic},
		{name: "other registry resources", scopes: []string{"registry:other:*"}, lic: lic},
		{name: "unknown resource types", scopes: []string{"plugin:stable/app:pull"}, lic: lic},
		{name: "mixed", scopes: []string{"repository:stable/a:pull", "repository:nightly/b:pull", "registry:catalog:*", "repository:beta/c:push,pull"}, lic: lic,
			want: []auth.ResourceActions{
				{Type: "repository", Name: "stable/a", Actions: []string{"pull"}},
				{Type: "registry", Name: "catalog", Actions: []string{"*"}},
				{Type: "repository", Name: "beta/c", Actions: []string{"pull"}},
			}, catalog: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := auth.ParseScopes(tt.scopes)
			if err != nil {
				t.Fatal(err)
			}
			got, catalog := Grant(req, tt.lic)
			if !equalAccess(got, tt.want) || catalog != tt.catalog {
				t.Errorf("Grant = %+v, %v; want %+v, %v", got, catalog, tt.want, tt.catalog)
			}
		})
	}
}
