package accounts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
)

// TokenPrefix starts every API token this package makes, so that secret
// scanners (GitHub's, trufflehog, gitleaks rules) can find leaked ones.
const TokenPrefix = "rgw_"

const (
	// tokenSecretLen base62 digits carry 256 bits.
	tokenSecretLen = 43
	// shownPrefixLen is how much of a token listings show: TokenPrefix and
	// 8 digits, enough to tell a customer's tokens apart, far too little
	// to guess the rest.
	shownPrefixLen = len(TokenPrefix) + 8
	maxEmailLen    = 254
	maxChannelLen  = 64
)

// newToken returns a fresh API token and the part of it listings show.
func newToken() (token, shown string) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand panics instead)
	s := new(big.Int).SetBytes(raw[:]).Text(62)
	s = strings.Repeat("0", tokenSecretLen-len(s)) + s
	token = TokenPrefix + s
	return token, token[:shownPrefixLen]
}

// hashToken is the stored form of a token: hex SHA-256, the same as the
// file backend's token_sha256, so that imported hashes work unchanged.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// channelRe is a repository path component (distribution/reference): a
// channel is the first component of the repositories it grants.
var channelRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// NormalizeEmail checks an account's e-mail address and returns it lower
// case: logins compare it case-insensitively.
func NormalizeEmail(s string) (string, error) {
	if s == "" {
		return "", invalidf("the e-mail address is empty")
	}
	if len(s) > maxEmailLen {
		return "", invalidf("the e-mail address is longer than %d characters", maxEmailLen)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", invalidf("%q: an e-mail address has no spaces or control characters", s)
	}
	// A colon cannot be sent as a Basic auth user name.
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || strings.Contains(s, ":") {
		return "", invalidf("%q is not an e-mail address (want name@domain, without a colon)", s)
	}
	return strings.ToLower(s), nil
}

// NormalizeChannels checks channel names and returns them sorted without
// duplicates.
func NormalizeChannels(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, invalidf("no channels given")
	}
	out := make([]string, 0, len(in))
	for _, ch := range in {
		if len(ch) > maxChannelLen || !channelRe.MatchString(ch) {
			return nil, invalidf("%q is not a channel name (lower-case letters and digits, separated by '.', '_' or '-'; at most %d characters)", ch, maxChannelLen)
		}
		out = append(out, ch)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ParseExpiry reads an --expires value: a date (the licence holds through
// that day, UTC, and ends at the midnight after it), an RFC 3339 time, or
// "never". A time not after now is refused: an account that is expired the
// moment it is made is a typo.
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "never" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err == nil {
		t = t.AddDate(0, 0, 1)
	} else if t, err = time.Parse(time.RFC3339, s); err != nil {
		return time.Time{}, invalidf("expiry %q: want a date (2027-06-30), an RFC 3339 time or never", s)
	}
	t = t.UTC().Truncate(time.Second)
	if !t.After(now) {
		return time.Time{}, invalidf("expiry %s is in the past", s)
	}
	return t, nil
}
