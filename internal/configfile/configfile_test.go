package configfile

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string `yaml:"name"`
}

type config struct {
	Listen string        `yaml:"listen"`
	TTL    time.Duration `yaml:"ttl"`
	Count  int           `yaml:"count"`
	Inner  inner         `yaml:"inner"`
}

func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		doc      string
		want     config
		problems []string // substrings, one per problem, in order
		err      string
	}{
		{name: "clean", doc: "listen: a\nttl: 2s\ncount: 3\ninner: {name: n}\n",
			want: config{Listen: "a", TTL: 2 * time.Second, Count: 3, Inner: inner{Name: "n"}}},
		{name: "every field problem, the rest decoded",
			doc:      "listen: a\nbogus: 1\ncount: many\ninner: {name: n, extra: 2}\nttl: 2s\n",
			want:     config{Listen: "a", TTL: 2 * time.Second, Inner: inner{Name: "n"}},
			problems: []string{"line 2: field bogus not found", "line 3: cannot unmarshal !!str `many`", "line 4: field extra not found"}},
		// yaml.v3 stops at a key given twice in a mapping: that one problem.
		{name: "duplicate key", doc: "listen: a\nbogus: 1\nlisten: b\n",
			problems: []string{`line 3: mapping key "listen" already defined at line 1`}},
		{name: "not a mapping", doc: "- a\n", problems: []string{"line 1: cannot unmarshal !!seq"}},
		{name: "syntax error", doc: "listen: [a\n", err: "yaml: "},
	} {
		var got config
		problems, err := Decode([]byte(tc.doc), &got)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || problems != nil {
				t.Errorf("%s: problems %v, err %v; want err with %q", tc.name, problems, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: decoded %+v, want %+v", tc.name, got, tc.want)
		}
		l := lines(problems)
		if len(l) != len(tc.problems) {
			t.Errorf("%s: %d problems, want %d: %q", tc.name, len(l), len(tc.problems), l)
			continue
		}
		for i, want := range tc.problems {
			if !strings.Contains(l[i], want) {
				t.Errorf("%s: problem %d is %q, want it to hold %q", tc.name, i, l[i], want)
			}
		}
	}
}

func TestDecodeEmpty(t *testing.T) {
	t.Parallel()
	var c config
	if problems, err := Decode(nil, &c); problems != nil || !errors.Is(err, io.EOF) {
		t.Errorf("empty: problems %v, err %v; want io.EOF", problems, err)
	}
}
