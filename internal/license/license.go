package license

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// ErrBadCredentials means the credentials do not grant anything: unknown user,
// wrong token or expired licence. The cases are deliberately merged for the
// client, so that it learns nothing about which e-mail addresses have
// accounts; the operator's log tells them apart: backends and the Cache
// return a *CredentialsError (see BadCredentials, ReasonOf), which errors.Is
// matches with ErrBadCredentials.
var ErrBadCredentials = errors.New("license: bad credentials")

// ErrUnavailable means no trustworthy answer could be obtained (backend down,
// timeout, malformed answer). Callers should answer 503 and grant nothing.
// Backends wrap it, so test with errors.Is.
var ErrUnavailable = errors.New("license: backend unavailable")

// License is what an account may pull.
type License struct {
	// Account is the e-mail address the licence was granted to. A Backend
	// leaves it empty when it cannot know it (an API that takes the token
	// alone); Cache.Lookup then fills in the username the client gave.
	Account string
	// Channels is sorted and free of duplicates and empty names.
	Channels []string
	// ExpiresAt is when the licence stops being valid; zero means never.
	ExpiresAt time.Time
}

// Holds reports whether the licence grants channel. It does not look at
// ExpiresAt: backends and the cache never hand out an expired licence.
func (l License) Holds(channel string) bool {
	// A linear scan stays correct even for a License built by hand with an
	// unsorted list, and licences hold a handful of channels.
	return channel != "" && slices.Contains(l.Channels, channel)
}

func (l License) expired(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}

func (l License) clone() License {
	l.Channels = slices.Clone(l.Channels)
	return l
}

// Backend looks up the licence of an API token. Implementations return
// BadCredentials(reason) (or the plain ErrBadCredentials, read as
// wrong_token) or an error wrapping ErrUnavailable on failure.
//
// The token alone is the key: the Cache stores, collapses and checks the
// username against License.Account itself, so that a hundred usernames
// typed with one token cost one look-up, and every backend refuses a
// username that is not the token's owner in the same way.
type Backend interface {
	Lookup(ctx context.Context, token string) (License, error)
}

// Prober is implemented by a Backend that can tell whether it is usable
// without a customer's token (a request to the licence API, a database
// ping). The Cache's Monitor calls it so that readiness follows the backend
// with no login traffic.
type Prober interface {
	Probe(ctx context.Context) error
}

// Credentials are what the client sent with `docker login`: its e-mail
// address as Username and its vendor API token as Token.
//
// Every way of printing Credentials (fmt verbs, slog, encoding/json) omits
// the token, because request structs end up in logs sooner or later.
type Credentials struct {
	Username string
	Token    string
}

const redacted = "[REDACTED]"

// String returns the username and a placeholder for the token.
func (c Credentials) String() string {
	return c.Username + ":" + redacted
}

// Format makes every fmt verb, including %#v and %d, go through String;
// without it %#v would print the struct fields verbatim.
func (c Credentials) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte(c.String()))
}

// LogValue logs the username only.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username))
}

// MarshalJSON encodes the username only.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Username string `json:"username"`
	}{c.Username})
}

// maxTokenLen bounds what we hash, cache and put into a request header; real
// API tokens are far shorter.
const maxTokenLen = 4096

// plausible rejects credentials no backend could accept, before any backend
// work.
func (c Credentials) plausible() bool {
	return c.Username != "" && PlausibleToken(c.Token)
}

// PlausibleToken rejects tokens no backend could accept, before any backend
// work; backends call it first thing in Lookup. Control characters matter
// for HTTP: net/http would refuse the header and that refusal would
// otherwise surface as ErrUnavailable.
func PlausibleToken(token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	return !strings.ContainsFunc(token, func(r rune) bool {
		return r < 0x20 || r == 0x7f
	})
}

// owns reports whether username may use the licence: any username when the
// backend does not know the owner, else the owner's e-mail address, compared
// case-insensitively (the domain part of an address is, and customers type
// their own address in whatever case).
func (l License) owns(username string) bool {
	return l.Account == "" || strings.EqualFold(l.Account, username)
}

// HashToken returns the hex SHA-256 of token: the token_sha256 of a licence
// file, the hash the account database stores, and the root of Fingerprint.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// FileAccount is one account as a licence file lists it, for moving
// accounts from one backend to another (`tokenserver accounts import`).
type FileAccount struct {
	Username string
	// TokenSHA256 is the hex SHA-256 of the API token, lower case.
	TokenSHA256 string
	Channels    []string
	Expires     time.Time
}

// FingerprintLen is the length of Fingerprint's answer in hex digits.
const FingerprintLen = 12

// Fingerprint names an API token in logs without revealing it: the first 12
// hex digits of its SHA-256, which are also the first 12 of the account's
// token_sha256 in a licence file, so an operator finds the account with
// grep, and a vendor recomputes it from a token with sha256sum. A keyed
// hash (HMAC) would keep readers of the logs from testing guessed tokens,
// but then nobody without the key could compute it; vendor API tokens are
// random, and 48 bits of their hash do not help anyone recover one. Two
// given tokens share a fingerprint with a chance of one in 2^48.
func Fingerprint(token string) string {
	return HashToken(token)[:FingerprintLen]
}

// NormalizeChannels returns the channels sorted, deduplicated and without
// empty names, so License.Channels is comparable across backends: every
// backend passes what it read through it.
func NormalizeChannels(in []string) []string {
	out := make([]string, 0, len(in))
	for _, ch := range in {
		if ch != "" {
			out = append(out, ch)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
