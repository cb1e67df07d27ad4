package auth

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseScope checks what the token service relies on for any input:
// ParseScope never panics; what it accepts is well-formed (a known grammar,
// a bounded length, no whitespace or control characters that could smuggle
// a second scope into a claim or a log line); and the rendered form parses
// back to the same thing, so the scopes a token carries are exactly the
// ones that were granted.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"repository:stable/app:pull",
		"repository:stable/app:pull,push",
		"repository:stable/app:*",
		"repository:stable/app:",
		"repository(plugin):stable/app:pull",
		"registry:catalog:*",
		"repository:localhost:5000/app:pull",
		"repository:a/b:c:d",
		"repository:Stable/App:pull",
		"repository::pull",
		"repository:stable/app",
		":::",
		"repository:stable/app:pull,,pull",
		"repository:" + strings.Repeat("a/", 200) + "a:pull",
		"repository:stable/app:pull\x00",
		"repository:stable/\napp:pull",
		"täg:ñame:pull",
		"foo:a\u00a0b:pull",
		"foo:a\u0085b:pull",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ra, err := ParseScope(s)
		if err != nil {
			var se *ScopeError
			if !asScopeError(err, &se) || se.Scope != s {
				t.Fatalf("error %v does not name the scope", err)
			}
			if !utf8.ValidString(se.Error()) && utf8.ValidString(s) {
				t.Fatalf("error message is not valid UTF-8: %q", se.Error())
			}
			return
		}
		if len(s) > maxScopeLen {
			t.Fatalf("accepted a scope of %d bytes", len(s))
		}
		if ra.Type == "" || ra.Name == "" || ra.Actions == nil {
			t.Fatalf("accepted %q as %+v", s, ra)
		}
		if !resourceTypeRe.MatchString(ra.Type) || strings.ContainsAny(ra.Type, "()") {
			t.Fatalf("type %q", ra.Type)
		}
		if strings.ContainsFunc(ra.Name, func(r rune) bool { return r <= ' ' || unicode.IsSpace(r) || unicode.IsControl(r) }) || strings.Count(ra.Name, ":") > 1 {
			t.Fatalf("name %q", ra.Name)
		}
		if ra.Type == TypeRepository && !repositoryRe.MatchString(ra.Name) {
			t.Fatalf("repository name %q", ra.Name)
		}
		for i, a := range ra.Actions {
			if a == "" || !actionRe.MatchString(a) || slices.Contains(ra.Actions[:i], a) {
				t.Fatalf("actions %q", ra.Actions)
			}
		}
		// Round trip.
		again, err := ParseScope(ra.String())
		if err != nil {
			t.Fatalf("%q rendered as %q which does not parse: %v", s, ra.String(), err)
		}
		if again.Type != ra.Type || again.Class != ra.Class || again.Name != ra.Name || !slices.Equal(again.Actions, ra.Actions) {
			t.Fatalf("round trip %+v -> %q -> %+v", ra, ra.String(), again)
		}
		// As one entry of a space-separated list it parses the same.
		list, err := ParseScopes([]string{s + " " + s})
		if err != nil || len(list) != 1 || list[0].Name != ra.Name || !slices.Equal(list[0].Actions, ra.Actions) {
			t.Fatalf("ParseScopes(%q twice) = %+v, %v", s, list, err)
		}
	})
}

func asScopeError(err error, target **ScopeError) bool {
	se, ok := err.(*ScopeError)
	if ok {
		*target = se
	}
	return ok
}
