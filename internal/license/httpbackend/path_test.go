package httpbackend

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestChannelPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path    string
		doc     string
		want    []string
		wantErr bool // from extract
	}{
		{"objects[].release", `{"objects":[{"release":"stable"},{"release":"beta"}]}`, []string{"stable", "beta"}, false},
		{"objects[].release", `{"objects":[{"release":"stable"},{"id":7},null,{"release":null}]}`, []string{"stable"}, false},
		{"objects[].release", `{"objects":[]}`, nil, false},
		{"objects[].release", `{}`, nil, false},
		{"objects[].release", `{"objects":null}`, nil, false},
		{"objects[].release", `{"objects":[{"release":["a","b"]}]}`, []string{"a", "b"}, false},
		{"objects[].release", `{"objects":{"release":"stable"}}`, nil, true},
		{"objects[].release", `{"objects":[{"release":1}]}`, nil, true},
		{"objects[].release", `{"objects":["stable"]}`, nil, true},
		{"objects[].release", `[{"release":"stable"}]`, nil, true},
		{"data.channels[]", `{"data":{"channels":["stable","beta"]}}`, []string{"stable", "beta"}, false},
		{"data.channels[]", `{"data":{"channels":["stable",3]}}`, nil, true},
		{"data.channels", `{"data":{"channels":["stable","beta",null]}}`, []string{"stable", "beta"}, false},
		{"channels[]", `{"channels":["stable"]}`, []string{"stable"}, false},
		{"channels[]", `{"channels":"stable"}`, nil, true},
		{"license.tier", `{"license":{"tier":"beta"}}`, []string{"beta"}, false},
		{"license.tier", `{"license":{"tier":{"name":"beta"}}}`, nil, true},
		{"license.tier", `{"license":"beta"}`, nil, true},
		{"a[].b[].c", `{"a":[{"b":[{"c":"x"},{"c":"y"}]},{"b":[{"c":"z"}]}]}`, []string{"x", "y", "z"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.doc, func(t *testing.T) {
			p, err := parseChannelPath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != tt.path {
				t.Errorf("String() = %q", p.String())
			}
			var doc any
			if err := json.Unmarshal([]byte(tt.doc), &doc); err != nil {
				t.Fatal(err)
			}
			got, err := p.extract(doc)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChannelPathInvalid(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", ".", "a.", ".a", "a..b", "[]", "a[", "a]", "a[0]", "a[][]", "a[]b", "a.[].b", " a", "a. b", "a[] ",
	} {
		if p, err := parseChannelPath(s); err == nil {
			t.Errorf("parseChannelPath(%q) = %v, want error", s, p)
		}
		if _, err := New(Options{URL: "https://example.com/", ChannelsPath: s}); s != "" && err == nil {
			t.Errorf("New accepted path %q", s)
		}
	}
}

func FuzzChannelPath(f *testing.F) {
	for _, s := range []string{"objects[].release", "data.channels[]", "a..b", "a[", "x[].y[].z"} {
		f.Add(s, `{"objects":[{"release":"stable"}],"data":{"channels":["a"]},"x":[{"y":[{"z":"q"}]}]}`)
	}
	f.Fuzz(func(t *testing.T, path, doc string) {
		p, err := parseChannelPath(path)
		if err != nil {
			return
		}
		// A valid path must print back to itself: it is what error
		// messages show the operator.
		if p.String() != path {
			t.Fatalf("round trip %q -> %q", path, p.String())
		}
		var v any
		if json.Unmarshal([]byte(doc), &v) != nil {
			return
		}
		_, _ = p.extract(v)
	})
}
