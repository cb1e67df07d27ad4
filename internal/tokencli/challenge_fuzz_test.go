package tokencli

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// FuzzParseChallenge feeds WWW-Authenticate values, which any registry the
// `token` command is pointed at controls, to ParseChallenge. For any input
// it must not panic; what it accepts has a scheme without blanks and
// lower-case parameter names without blanks, and writing the challenge out
// again (every value quoted) parses back to the same challenge, also with a
// second challenge after it.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="http://localhost:5000/token",service="gw"`,
		`Bearer realm="r", service="s", scope="repository:a/b:pull repository:c/d:pull",error="insufficient_scope"`,
		`bearer Realm=bare,service="q\"uote"`,
		`Bearer realm="r", Basic realm="x"`,
		`Basic realm="registry"`,
		`Bearer realm="unterminated`,
		`Bearer realm`,
		`Bearer realm="a\\",service=x`,
		"Bearer\trealm=\"tab\"",
		`Bearer ,,realm=x,,`,
		`Bearer =x`,
		`Bearer realm=""`,
		``,
		`   `,
		"Bearer realm=\"\xff\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, err := ParseChallenge(h)
		if err != nil {
			return
		}
		if c.Scheme == "" || strings.ContainsAny(c.Scheme, " \t") {
			t.Fatalf("%q: scheme %q", h, c.Scheme)
		}
		for k := range c.Params {
			if k == "" || strings.ContainsAny(k, " \t=") || k != strings.ToLower(k) {
				t.Fatalf("%q: parameter name %q", h, k)
			}
		}
		out := render(c)
		again, err := ParseChallenge(out)
		if err != nil || again.Scheme != c.Scheme || !maps.Equal(again.Params, c.Params) {
			t.Fatalf("%q parsed as %q %v, written as %q, parsed back as %q %v (%v)", h, c.Scheme, c.Params, out, again.Scheme, again.Params, err)
		}
		if len(c.Params) > 0 {
			again, err = ParseChallenge(out + `, Basic realm="other"`)
			if err != nil || again.Scheme != c.Scheme || !maps.Equal(again.Params, c.Params) {
				t.Fatalf("%q followed by a second challenge parsed as %q %v (%v)", out, again.Scheme, again.Params, err)
			}
		}
	})
}

// render writes c as a server would: parameters sorted, values quoted.
func render(c Challenge) string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	for i, k := range slices.Sorted(maps.Keys(c.Params)) {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(c.Params[k])
		b.WriteString(k + `="` + v + `"`)
	}
	return b.String()
}
