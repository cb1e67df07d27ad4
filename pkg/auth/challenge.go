package auth

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Challenge is the Bearer challenge of a registry's 401 (the
// WWW-Authenticate header of the Docker registry token spec and RFC 6750):
// where to get a token (Realm), for which audience (Service) and what it
// must grant (Scope), and, when a presented token was refused, why (Error,
// ErrorDescription).
type Challenge struct {
	Realm   string
	Service string
	// Scope is a space-separated list of scopes.
	Scope string
	// Error is "invalid_token" or "insufficient_scope" when a token was
	// presented and refused: containerd refetches a token only then.
	Error string
	// ErrorDescription is the reason a person reads (docker prints it).
	ErrorDescription string
	// Extra holds any other parameter, names lower-cased; written after
	// the ones above, sorted by name.
	Extra map[string]string
}

// ChallengeScheme is the only scheme a Challenge is written with.
const ChallengeScheme = "Bearer"

// SchemeError is returned by ParseChallenge for a challenge of another
// scheme than Bearer (a registry that wants Basic credentials on every
// request).
type SchemeError struct {
	Scheme string
}

func (e *SchemeError) Error() string {
	return fmt.Sprintf("WWW-Authenticate: the challenge is %s, not Bearer", e.Scheme)
}

// String is the header value: `Bearer realm="…",service="…"`, then scope,
// error and error_description when set. It is a well-formed challenge for
// any field values, not only for those a configuration allows: quotes and
// backslashes are escaped, control characters (which would end or split the
// header) become '?', and so does, in error_description, anything outside
// the printable ASCII RFC 6750 allows there (its text is often the
// username a customer typed).
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(ChallengeScheme)
	b.WriteByte(' ')
	writeParam(&b, "realm", quote(c.Realm))
	for _, p := range [...]struct{ name, value string }{
		{"service", c.Service}, {"scope", c.Scope}, {"error", c.Error},
	} {
		if p.value != "" {
			b.WriteByte(',')
			writeParam(&b, p.name, quote(p.value))
		}
	}
	if c.ErrorDescription != "" {
		b.WriteByte(',')
		writeParam(&b, "error_description", `"`+descriptionSafe(c.ErrorDescription)+`"`)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Extra)) {
		if !isToken(k) || knownParam(k) || k != strings.ToLower(k) {
			// Not a parameter name a parser could read back, or one that
			// would shadow a field.
			continue
		}
		b.WriteByte(',')
		writeParam(&b, k, quote(c.Extra[k]))
	}
	return b.String()
}

// Params returns every parameter that is set, as a map by name (for display).
func (c Challenge) Params() map[string]string {
	m := maps.Clone(c.Extra)
	if m == nil {
		m = map[string]string{}
	}
	for _, p := range [...]struct{ name, value string }{
		{"realm", c.Realm}, {"service", c.Service}, {"scope", c.Scope},
		{"error", c.Error}, {"error_description", c.ErrorDescription},
	} {
		if p.value != "" {
			m[p.name] = p.value
		}
	}
	return m
}

func writeParam(b *strings.Builder, name, quoted string) {
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(quoted)
}

// quote writes s as an RFC 7230 quoted-string.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case ch < 0x20 && ch != '\t' || ch == 0x7f:
			b.WriteByte('?')
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// descriptionSafe keeps s within what RFC 6750 allows in error_description:
// printable ASCII but '"' and '\'.
func descriptionSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if !descriptionChar(r) {
			return '?'
		}
		return r
	}, s)
}

func descriptionChar(r rune) bool {
	return r >= 0x20 && r <= 0x7e && r != '"' && r != '\\'
}

func knownParam(name string) bool {
	switch name {
	case "realm", "service", "scope", "error", "error_description":
		return true
	}
	return false
}

// isToken reports whether s is an RFC 7230 token (a parameter name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0 {
			continue
		}
		return false
	}
	return true
}

// ParseChallenge parses the first challenge of a WWW-Authenticate header
// value, which must be Bearer (a *SchemeError otherwise):
// `Bearer realm="…",service="…",scope="a b"`. Values may be quoted (with
// backslash escapes) or bare tokens; parameter names are case-insensitive.
// A second challenge after the first (`…, Basic realm=…`) is ignored, as
// clients do.
func ParseChallenge(h string) (Challenge, error) {
	h = strings.TrimSpace(h)
	// RFC 7235: the scheme ends at the first blank, a tab as well as a
	// space.
	scheme, rest := h, ""
	if i := strings.IndexAny(h, " \t"); i >= 0 {
		scheme, rest = h[:i], h[i+1:]
	}
	if scheme == "" {
		return Challenge{}, errors.New("empty WWW-Authenticate header")
	}
	if !strings.EqualFold(scheme, ChallengeScheme) {
		return Challenge{}, &SchemeError{Scheme: scheme}
	}
	var c Challenge
	s := strings.TrimSpace(rest)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return Challenge{}, fmt.Errorf("WWW-Authenticate: parameter without value near %q", s)
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		if key == "" {
			return Challenge{}, fmt.Errorf("WWW-Authenticate: value without parameter name near %q", s)
		}
		if strings.ContainsAny(key, " \t") {
			// `Basic realm=…`: a second challenge; clients use the first.
			break
		}
		s = strings.TrimLeft(s[eq+1:], " ")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i, closed := 1, false
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if s[i] == '"' {
					closed = true
					break
				}
				b.WriteByte(s[i])
			}
			if !closed {
				return Challenge{}, fmt.Errorf("WWW-Authenticate: unterminated quoted value for %s", key)
			}
			val, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		c.set(key, val)
		s = strings.TrimLeft(s, " ")
		if s != "" {
			if s[0] != ',' {
				// A second challenge (`…, Basic realm=…`) follows; clients
				// use the first Bearer one.
				break
			}
			s = strings.TrimLeft(s[1:], " ")
		}
	}
	return c, nil
}

func (c *Challenge) set(key, val string) {
	switch key {
	case "realm":
		c.Realm = val
	case "service":
		c.Service = val
	case "scope":
		c.Scope = val
	case "error":
		c.Error = val
	case "error_description":
		c.ErrorDescription = val
	default:
		if c.Extra == nil {
			c.Extra = map[string]string{}
		}
		c.Extra[key] = val
	}
}
