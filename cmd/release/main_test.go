package main

import (
	"bytes"
	"strings"
	"testing"
)

// Each mistake on the command line is named, with exit 2 for usage and 1
// for a release that cannot be made.
func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"extra argument", []string{"-version", "1.0.0", "push"}, nil, 2, `unexpected arguments ["push"]`},
		{"bad platform", []string{"-platforms", "linux"}, nil, 2, `-platforms: "linux" is not OS/ARCH[/VARIANT]`},
		{"bad epoch", nil, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, 2, `SOURCE_DATE_EPOCH "yesterday": not seconds since 1970`},
		{"unknown flag", []string{"-push"}, nil, 2, "flag provided but not defined: -push"},
		{"no version", []string{"-registry", "r.example.com"}, nil, 1, "VERSION is required"},
		{"not semver", []string{"-version", "abc1234", "-registry", "r.example.com"}, nil, 1, `VERSION "abc1234" is not a release version`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			code := run(t.Context(), tc.args, getenv, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

func TestParsePlatforms(t *testing.T) {
	ps, err := parsePlatforms("linux/amd64, linux/arm/v7")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Architecture != "amd64" || ps[1].Variant != "v7" {
		t.Errorf("%+v", ps)
	}
	if got, err := sourceDate("1700000000"); err != nil || got.Unix() != 1700000000 {
		t.Errorf("sourceDate: %v %v", got, err)
	}
}
