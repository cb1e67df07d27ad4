package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ResourceActions
		wantErr string
	}{
		{in: "repository:stable/app:pull", want: ResourceActions{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}},
		{in: "repository:stable/app:pull,push", want: ResourceActions{Type: "repository", Name: "stable/app", Actions: []string{"pull", "push"}}},
		{in: "repository:stable/app:pull,pull,", want: ResourceActions{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}},
		{in: "repository:stable/app:", want: ResourceActions{Type: "repository", Name: "stable/app", Actions: []string{}}},
		{in: "repository:stable/app:*", want: ResourceActions{Type: "repository", Name: "stable/app", Actions: []string{"*"}}},
		{in: "repository(plugin):stable/app:pull", want: ResourceActions{Type: "repository", Class: "plugin", Name: "stable/app", Actions: []string{"pull"}}},
		{in: "something:host:5000/x:pull", want: ResourceActions{Type: "something", Name: "host:5000/x", Actions: []string{"pull"}}},
		{in: "repository:localhost:5000/stable/app:pull", wantErr: "bad repository name"},
		{in: "registry:catalog:*", want: ResourceActions{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		{in: "repository:a__b/c-d.e:pull", want: ResourceActions{Type: "repository", Name: "a__b/c-d.e", Actions: []string{"pull"}}},

		{in: "", wantErr: "want type:name:actions"},
		{in: "repository", wantErr: "want type:name:actions"},
		{in: "repository:stable/app", wantErr: "want type:name:actions"},
		{in: "Repository:stable/app:pull", wantErr: "bad resource type"},
		{in: "repository(:stable/app:pull", wantErr: "bad resource type"},
		{in: "repository::pull", wantErr: "empty resource name"},
		{in: "repository:Stable/app:pull", wantErr: "bad repository name"},
		{in: "repository:stable//app:pull", wantErr: "bad repository name"},
		{in: "repository:../app:pull", wantErr: "bad repository name"},
		{in: "repository:" + strings.Repeat("a", 256) + ":pull", wantErr: "bad repository name"},
		{in: "repository:a:b:c:pull", wantErr: "more than one ':'"},
		{in: "registry:cat\x00alog:*", wantErr: "control characters"},
		{in: "repository:stable/app:PULL", wantErr: "bad action"},
		{in: "repository:stable/app:pull;rm", wantErr: "bad action"},
		{in: "repository:stable/app:" + strings.Repeat("p", 600), wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if tt.wantErr != "" {
				var se *ScopeError
				if !errors.As(err, &se) || !strings.Contains(se.Reason, tt.wantErr) {
					t.Fatalf("ParseScope(%q) error = %v, want reason containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if tt.in[len(tt.in)-1] != ',' && !strings.Contains(tt.in, "pull,pull") {
				if s := got.String(); s != tt.in {
					t.Errorf("String() = %q, want %q", s, tt.in)
				}
			}
		})
	}
}

func TestParseScopesMergesAndSplits(t *testing.T) {
	t.Parallel()
	got, err := ParseScopes([]string{
		"repository:stable/app:pull registry:catalog:*",
		"repository:stable/app:push",
		"  ",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []ResourceActions{
		{Type: "repository", Name: "stable/app", Actions: []string{"pull", "push"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	if got, err := ParseScopes(nil); err != nil || got != nil {
		t.Fatalf("no scopes: got %v, %v", got, err)
	}

	_, err = ParseScopes([]string{"repository:ok:pull", "repository:Bad:pull"})
	var se *ScopeError
	if !errors.As(err, &se) || se.Scope != "repository:Bad:pull" {
		t.Fatalf("error %v does not name the bad scope", err)
	}
	if !strings.Contains(err.Error(), `"repository:Bad:pull"`) {
		t.Errorf("message %q does not quote the scope", err)
	}
}

func TestParseScopesBound(t *testing.T) {
	t.Parallel()
	var many []string
	for i := range MaxScopes + 1 {
		many = append(many, "repository:r"+strings.Repeat("x", i)+":pull")
	}
	if _, err := ParseScopes(many); !errors.Is(err, ErrTooManyScopes) {
		t.Fatalf("err = %v, want ErrTooManyScopes", err)
	}
	if _, err := ParseScopes(many[:MaxScopes]); err != nil {
		t.Fatalf("MaxScopes scopes refused: %v", err)
	}
}

func TestChannel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"stable/app": "stable", "stable/a/b": "stable", "app": "app", "": ""} {
		if got := Channel(in); got != want {
			t.Errorf("Channel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClaimsAllows(t *testing.T) {
	t.Parallel()
	c := &Claims{
		Access: []ResourceActions{
			{Type: "repository", Name: "stable/app", Actions: []string{"pull"}},
			{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		},
		Channels: []string{"stable"},
	}
	tests := []struct {
		typ, name, action string
		want              bool
	}{
		{"repository", "stable/app", "pull", true},
		{"repository", "stable/app", "push", false},
		{"repository", "stable/app2", "pull", false},
		{"repository", "stable", "pull", false},
		{"registry", "catalog", "pull", true},
		{"registry", "stable/app", "pull", false},
	}
	for _, tt := range tests {
		if got := c.Allows(tt.typ, tt.name, tt.action); got != tt.want {
			t.Errorf("Allows(%s, %s, %s) = %v, want %v", tt.typ, tt.name, tt.action, got, tt.want)
		}
	}
	if !c.HoldsChannel("stable") || c.HoldsChannel("beta") {
		t.Error("HoldsChannel wrong")
	}
}
