package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/distribution/reference"
)

// Resource types and actions of the registry token spec.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"

	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"

	// CatalogName is the resource name of `registry:catalog:*`.
	CatalogName = "catalog"
)

// maxScopeLen bounds a single scope: a repository name is at most 255
// characters, so anything much longer is an attack or a mistake.
const maxScopeLen = 512

// The grammar of a scope's parts, matched by hand rather than by regexp:
// they run for every scope of every token request. The regexps they
// implement are in scope_grammar_test.go, which holds the matchers to them.

// isResourceType matches `[a-z0-9]+(?:\([a-z0-9]+\))?`.
func isResourceType(s string) bool {
	typ, class, hasClass := strings.Cut(s, "(")
	if !hasClass {
		return isLowerAlnum(typ)
	}
	class, closed := strings.CutSuffix(class, ")")
	return closed && isLowerAlnum(typ) && isLowerAlnum(class)
}

// isAction matches `[a-z]*|\*`.
func isAction(s string) bool {
	if s == ActionAll {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// IsRepositoryPath reports whether s matches the path grammar of
// distribution/reference without its optional domain: clients name
// repositories relative to the registry they ask, and the first component
// must be the channel, never a host. Components are joined by "/" and match
// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`. It is written out rather than a
// regular expression because the gateway checks it on every request
// (scope_grammar_test.go holds it to the grammar's regular expression). It
// does not bound the length.
func IsRepositoryPath(s string) bool {
	for {
		component, rest, more := strings.Cut(s, "/")
		if !isPathComponent(component) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

func isPathComponent(s string) bool {
	i := 0
	for {
		start := i
		for i < len(s) && isLowerAlnumByte(s[i]) {
			i++
		}
		if i == start {
			return false // empty, or a separator not between alphanumerics
		}
		if i == len(s) {
			return true
		}
		switch s[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(s) && s[i] == '_' {
				i++
			}
		case '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

func isLowerAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerAlnumByte(s[i]) {
			return false
		}
	}
	return s != ""
}

func isLowerAlnumByte(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// ResourceActions is one entry of a token's access claim, and also what a
// parsed scope asks for.
type ResourceActions struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String renders the scope form, `type[(class)]:name:a,b`.
func (r ResourceActions) String() string {
	t := r.Type
	if r.Class != "" {
		t += "(" + r.Class + ")"
	}
	return t + ":" + r.Name + ":" + strings.Join(r.Actions, ",")
}

// Has reports whether the entry grants action; "*" grants every action.
func (r ResourceActions) Has(action string) bool {
	return slices.Contains(r.Actions, action) || slices.Contains(r.Actions, ActionAll)
}

// ScopeError names the scope that did not parse, so that a client sees which
// one of several was wrong.
type ScopeError struct {
	Scope  string
	Reason string
}

func (e *ScopeError) Error() string {
	s := e.Scope
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("invalid scope %q: %s", s, e.Reason)
}

// ParseScope parses one scope of the grammar
//
//	resourcetype[(class)] ":" resourcename ":" action[,action]*
//
// where the resource name may itself hold one ":" (a registry host with a
// port). Repository names must follow the path grammar of distribution's
// names: lower-case components joined by "/", no host part.
// Duplicate and empty actions are dropped.
func ParseScope(s string) (ResourceActions, error) {
	fail := func(reason string) (ResourceActions, error) {
		return ResourceActions{}, &ScopeError{Scope: s, Reason: reason}
	}
	if len(s) > maxScopeLen {
		return fail("too long")
	}
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return fail("want type:name:actions")
	}
	typ, name, actions := s[:first], s[first+1:last], s[last+1:]
	if !isResourceType(typ) {
		return fail("bad resource type")
	}
	var class string
	if i := strings.IndexByte(typ, '('); i >= 0 {
		typ, class = typ[:i], typ[i+1:len(typ)-1]
	}
	if name == "" {
		return fail("empty resource name")
	}
	if strings.Count(name, ":") > 1 {
		return fail("resource name has more than one ':'")
	}
	if typ == TypeRepository && (len(name) > reference.RepositoryNameTotalLengthMax || !IsRepositoryPath(name)) {
		return fail("bad repository name")
	}
	// Unicode spaces too: ParseScopes splits on them, so a name holding one
	// would parse differently alone and in a list.
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fail("resource name has spaces or control characters")
	}
	ra := ResourceActions{Type: typ, Class: class, Name: name, Actions: []string{}}
	for _, a := range strings.Split(actions, ",") {
		if !isAction(a) {
			return fail("bad action")
		}
		if a != "" && !slices.Contains(ra.Actions, a) {
			ra.Actions = append(ra.Actions, a)
		}
	}
	return ra, nil
}

// ErrTooManyScopes is returned by ParseScopes when a request names more
// scopes than any real client sends.
var ErrTooManyScopes = errors.New("too many scopes")

// MaxScopes bounds the scopes of one token request; docker asks for at most
// a handful (a pull plus cross-repository mounts).
const MaxScopes = 32

// ParseScopes parses the scope parameters of a token request. Each may be a
// space-separated list (the OAuth2 form). Entries for the same resource are
// merged, keeping the order of first appearance.
func ParseScopes(params []string) ([]ResourceActions, error) {
	var out []ResourceActions
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			ra, err := ParseScope(s)
			if err != nil {
				return nil, err
			}
			i := slices.IndexFunc(out, func(o ResourceActions) bool {
				return o.Type == ra.Type && o.Class == ra.Class && o.Name == ra.Name
			})
			if i < 0 {
				if len(out) == MaxScopes {
					return nil, ErrTooManyScopes
				}
				out = append(out, ra)
				continue
			}
			for _, a := range ra.Actions {
				if !slices.Contains(out[i].Actions, a) {
					out[i].Actions = append(out[i].Actions, a)
				}
			}
		}
	}
	return out, nil
}

// Channel is the release channel of a repository: its first path component
// (`stable` for `stable/app`).
func Channel(repository string) string {
	if i := strings.IndexByte(repository, '/'); i >= 0 {
		return repository[:i]
	}
	return repository
}
