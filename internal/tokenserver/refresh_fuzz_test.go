package tokenserver

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzRefreshOpen feeds refresh_token values a client controls to open. For
// any input it must not panic and must fail with errBadRefreshToken alone
// (or the refreshExpiredError that errors.Is matches with it).
// What opens must hold usable claims (subject, API token, this service, not
// expired), and must be the only spelling of its sealed box that opens: a
// refresh token is a bearer credential, and a variant the server never
// issued (a padding bit of the last character, a line break the base64
// decoder skips) must not work. The key is fixed, so the tokens sealed for
// the seed corpus open in every fuzz worker.
func FuzzRefreshOpen(f *testing.F) {
	s, err := newRefreshSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	seal := func(c refreshClaims) string {
		tok, err := s.seal(&c)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	// Several lengths of subject, so that the sealed box ends on each of
	// the three base64 boundaries (two of them leave padding bits).
	for _, sub := range []string{"a@example.com", "ab@example.com", "abc@example.com"} {
		tok := seal(refreshClaims{Subject: sub, Token: "api-token", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(), ID: "jti", Service: testService})
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(tok + "A")
		f.Add(tok[:len(tok)/2] + "\n" + tok[len(tok)/2:])
	}
	f.Add(seal(refreshClaims{Subject: "old@example.com", Token: "t", ExpiresAt: now.Unix(), Service: testService}))
	f.Add(seal(refreshClaims{Subject: "x@example.com", Token: "t", ExpiresAt: now.Add(time.Hour).Unix(), Service: "other"}))
	f.Add(seal(refreshClaims{ExpiresAt: now.Add(time.Hour).Unix(), Service: testService}))
	for _, seed := range []string{"", "rt1.", "rt1.=", "rt1.AAAA", "rt1.!!!", "rt2.AAAA", "rt1." + strings.Repeat("A", maxRefreshTokenLen)} {
		f.Add(seed)
	}

	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.open(token, testService, now)
		if err != nil {
			if !errors.Is(err, errBadRefreshToken) || c != nil {
				t.Fatalf("open(%q) = %v, %v: want only errBadRefreshToken", token, c, err)
			}
			return
		}
		if c.Subject == "" || c.Token == "" || c.Service != testService || c.ExpiresAt <= now.Unix() || len(token) > maxRefreshTokenLen {
			t.Fatalf("open(%q) accepted claims %+v", token, *c)
		}
		variants := []string{
			token[:len(token)/2] + "\n" + token[len(token)/2:],
			token + "\r\n",
		}
		for _, r := range alphabet {
			if v := token[:len(token)-1] + string(r); v != token {
				variants = append(variants, v)
			}
		}
		for _, v := range variants {
			if _, err := s.open(v, testService, now); err == nil {
				t.Fatalf("%q opens and so does its variant %q", token, v)
			}
		}
	})
}
