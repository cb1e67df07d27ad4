// Package jsonx writes JSON strings byte for byte as encoding/json does,
// without its reflection, for the few hot paths that build their JSON by
// hand: the claims of every token (pkg/auth) and the token service's
// answer.
package jsonx

import "encoding/json"

// AppendString appends s as a JSON string, exactly as json.Marshal writes
// it. The strings of a token (names, addresses, hex ids, base64url) are
// printable ASCII that needs no escape; anything else is left to
// encoding/json, so that its rules (HTML characters, U+2028, invalid UTF-8)
// apply unchanged.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plain marks the bytes encoding/json writes as they are: printable ASCII
// but the quote, the backslash and the HTML characters. A table: the check
// runs for every byte of a token of a few KB, twice an answer.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()
