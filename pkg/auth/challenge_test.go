package auth

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func TestParseChallenge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    Challenge
		wantErr bool
	}{
		{in: `Bearer realm="http://localhost:5000/token",service="gw"`, want: Challenge{Realm: "http://localhost:5000/token", Service: "gw"}},
		{in: `Bearer realm="r", service="s", scope="repository:a/b:pull repository:c/d:pull",error="insufficient_scope"`,
			want: Challenge{Realm: "r", Service: "s", Scope: "repository:a/b:pull repository:c/d:pull", Error: "insufficient_scope"}},
		{in: `bearer Realm=bare,service="q\"uote"`, want: Challenge{Realm: "bare", Service: `q"uote`}},
		{in: `Bearer realm="r", Basic realm="x"`, want: Challenge{Realm: "r"}},
		{in: "Bearer\trealm=\"tab\"", want: Challenge{Realm: "tab"}},
		{in: `Bearer realm="r",error="invalid_token",error_description="token expired",foo=bar`,
			want: Challenge{Realm: "r", Error: "invalid_token", ErrorDescription: "token expired", Extra: map[string]string{"foo": "bar"}}},
		{in: `Bearer realm="unterminated`, wantErr: true},
		{in: `Bearer realm`, wantErr: true},
		{in: ``, wantErr: true},
		{in: `Basic realm="registry"`, wantErr: true},
	} {
		c, err := ParseChallenge(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if err == nil && !reflect.DeepEqual(c, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, c, tc.want)
		}
	}
}

// TestParseChallengeScheme: a challenge of another scheme is a
// *SchemeError that names it, so that a client can say what the registry
// wants instead.
func TestParseChallengeScheme(t *testing.T) {
	t.Parallel()
	_, err := ParseChallenge(`Basic realm="registry"`)
	var se *SchemeError
	if !errors.As(err, &se) || se.Scheme != "Basic" {
		t.Fatalf("err %v", err)
	}
}

// TestChallengeString pins the exact header text clients see: docker,
// containerd and the tests read these.
func TestChallengeString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Challenge
		want string
	}{
		{Challenge{Realm: "http://localhost:5000/token", Service: "gw"}, `Bearer realm="http://localhost:5000/token",service="gw"`},
		{Challenge{Realm: "r", Service: "s", Scope: "repository:stable/app:pull"}, `Bearer realm="r",service="s",scope="repository:stable/app:pull"`},
		{Challenge{Realm: "r", Service: "s", Scope: "registry:catalog:*", Error: "insufficient_scope", ErrorDescription: "the token does not grant the catalog (registry:catalog:*)"},
			`Bearer realm="r",service="s",scope="registry:catalog:*",error="insufficient_scope",error_description="the token does not grant the catalog (registry:catalog:*)"`},
		{Challenge{Realm: "r"}, `Bearer realm="r"`},
		{Challenge{}, `Bearer realm=""`},
		{Challenge{Realm: "r", Extra: map[string]string{"b": "2", "a": "1"}}, `Bearer realm="r",a="1",b="2"`},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.c, got, tc.want)
		}
	}
}

// TestChallengeStringUnsafe: values no configuration should allow still
// give one well-formed header that parses back: quotes and backslashes are
// escaped, line breaks and control characters cannot end the header, a
// made-up parameter name cannot inject a parameter, and error_description
// keeps to RFC 6750's characters.
func TestChallengeStringUnsafe(t *testing.T) {
	t.Parallel()
	c := Challenge{
		Realm:            "https://x/token\",service=\"evil",
		Service:          "a\\b\r\nSet-Cookie: x=1",
		Scope:            "repository:a/b:pull\x00",
		ErrorDescription: "a \"b\" \\c\r\nd\u00e9 'e' (f)",
		Extra:            map[string]string{`x",realm="evil`: "1", "Realm": "2", "realm": "3", "ok": "\x7f"},
	}
	got := c.String()
	want := `Bearer realm="https://x/token\",service=\"evil",service="a\\b??Set-Cookie: x=1",scope="repository:a/b:pull?",error_description="a ?b? ?c??d? 'e' (f)",ok="?"`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	back, err := ParseChallenge(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.Realm != c.Realm || back.Service != "a\\b??Set-Cookie: x=1" || len(back.Extra) != 1 {
		t.Errorf("parsed back as %+v", back)
	}
}

// validChallenge reports whether c is one String writes as it is: no
// control characters, error_description within RFC 6750, extra names that
// are lower-case tokens other than the fields'.
func validChallenge(c Challenge) bool {
	clean := func(s string) bool {
		return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
	}
	for _, s := range []string{c.Realm, c.Service, c.Scope, c.Error} {
		if !clean(s) {
			return false
		}
	}
	for i := 0; i < len(c.ErrorDescription); i++ {
		if !descriptionChar(rune(c.ErrorDescription[i])) {
			return false
		}
	}
	for k, v := range c.Extra {
		if !isToken(k) || knownParam(k) || k != strings.ToLower(k) || !clean(v) {
			return false
		}
	}
	return true
}

func sameChallenge(a, b Challenge) bool {
	return a.Realm == b.Realm && a.Service == b.Service && a.Scope == b.Scope && a.Error == b.Error &&
		a.ErrorDescription == b.ErrorDescription && maps.Equal(a.Extra, b.Extra)
}

// FuzzChallengeRoundTrip: for any field values String gives one header
// line that parses as Bearer, and for every valid challenge
// parse(write(c)) == c, also with a second challenge after it.
func FuzzChallengeRoundTrip(f *testing.F) {
	f.Add("http://localhost:5000/token", "gw", "repository:stable/app:pull", "insufficient_scope", "the token of bob does not grant pull", "k", "v")
	f.Add(`a"b\c`, "", "a b", "", "", "", "")
	f.Add("\r\n", "\x00", "\t", "é", "é", "Key", "\xff")
	f.Add("", "", "", "", "", "realm", "x")
	f.Fuzz(func(t *testing.T, realm, service, scope, errCode, desc, k, v string) {
		c := Challenge{Realm: realm, Service: service, Scope: scope, Error: errCode, ErrorDescription: desc}
		if k != "" {
			c.Extra = map[string]string{k: v}
		}
		out := c.String()
		if strings.ContainsAny(out, "\r\n\x00") {
			t.Fatalf("%+v written as %q", c, out)
		}
		back, err := ParseChallenge(out)
		if err != nil {
			t.Fatalf("%+v written as %q does not parse: %v", c, out, err)
		}
		if !validChallenge(c) {
			return
		}
		if !sameChallenge(back, c) {
			t.Fatalf("%+v written as %q parsed back as %+v", c, out, back)
		}
		back, err = ParseChallenge(out + `, Basic realm="other"`)
		if err != nil || !sameChallenge(back, c) {
			t.Fatalf("%q followed by a second challenge parsed as %+v (%v)", out, back, err)
		}
	})
}

// FuzzParseChallenge feeds WWW-Authenticate values, which any registry a
// client is pointed at controls, to ParseChallenge. For any input it must
// not panic; what it accepts, written out again, parses back, and once
// written the challenge is a fixed point of write and parse.
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
		`Bearer realm="r",error_description="a \"quoted\" word",x-y=z`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, err := ParseChallenge(h)
		if err != nil {
			return
		}
		for k := range c.Extra {
			if k == "" || strings.ContainsAny(k, " \t=") || k != strings.ToLower(k) || knownParam(k) {
				t.Fatalf("%q: parameter name %q", h, k)
			}
		}
		out := c.String()
		once, err := ParseChallenge(out)
		if err != nil {
			t.Fatalf("%q parsed as %+v, written as %q, does not parse back: %v", h, c, out, err)
		}
		if validChallenge(c) && !sameChallenge(once, c) {
			t.Fatalf("%q parsed as %+v, written as %q, parsed back as %+v", h, c, out, once)
		}
		if twice, err := ParseChallenge(once.String()); err != nil || !sameChallenge(twice, once) {
			t.Fatalf("%q: written twice parsed as %+v, once %+v (%v)", h, twice, once, err)
		}
	})
}
