package auth

import "encoding/json"

// appendJSONString appends s as a JSON string, exactly as json.Marshal
// writes it, for appendClaims, which runs for every token issued. The
// strings of a token (names, addresses, hex ids) are printable ASCII that
// needs no escape; anything else is left to encoding/json, so that its
// rules (HTML characters, U+2028, invalid UTF-8) apply unchanged.
//
// It is internal/jsonx.AppendString, which the token service still uses
// for its answers: pkg/ imports nothing under internal/
// (TestPkgImportsNoInternal), and twenty lines do not deserve a public
// package.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jsonPlain marks the bytes encoding/json writes as they are: printable
// ASCII but the quote, the backslash and the HTML characters. A table: the
// check runs for every byte of a token.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()
