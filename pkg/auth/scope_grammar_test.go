package auth

import (
	"regexp"
	"testing"
)

// The grammar of a scope's parts as regexps: the specification the
// hand-written matchers of scope.go implement.
var (
	resourceTypeRe = regexp.MustCompile(`^[a-z0-9]+(?:\([a-z0-9]+\))?$`)
	actionRe       = regexp.MustCompile(`^(?:[a-z]*|\*)$`)
	repositoryRe   = regexp.MustCompile(`^` + pathComponentRe + `(?:/` + pathComponentRe + `)*$`)
)

const pathComponentRe = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`

var grammarSeeds = []string{
	"", "a", "repository", "registry", "repository(plugin)", "repository()", "(plugin)", "a(b)c", "a((b))", "a(b", "a)",
	"A", "*", "**", "pull", "pull,push", "pu-ll", "stable/app", "stable/app/", "/stable", "stable//app",
	"a.b", "a..b", "a_b", "a__b", "a___b", "a-b", "a---b", "a.-b", "a_-b", "-a", "a-", "a.", ".a", "_a",
	"stable/team.x__y---z/app9", "localhost:5000/app", "Stable/App", "a/b/c/d/e", "0/9", "ä",
}

func TestScopeGrammarMatchesRegexps(t *testing.T) {
	t.Parallel()
	for _, s := range grammarSeeds {
		checkGrammar(t, s)
	}
}

func FuzzScopeGrammar(f *testing.F) {
	for _, s := range grammarSeeds {
		f.Add(s)
	}
	f.Fuzz(checkGrammar)
}

func checkGrammar(t *testing.T, s string) {
	for _, m := range []struct {
		name string
		got  bool
		re   *regexp.Regexp
	}{
		{"isResourceType", isResourceType(s), resourceTypeRe},
		{"isAction", isAction(s), actionRe},
		{"IsRepositoryPath", IsRepositoryPath(s), repositoryRe},
	} {
		if want := m.re.MatchString(s); m.got != want {
			t.Errorf("%s(%q) = %v, the regexp says %v", m.name, s, m.got, want)
		}
	}
}
