package tokenserver

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/registry-gateway/internal/license"
)

// loginFailedMsg is the message of the line of a refused login.
const loginFailedMsg = "login failed"

// maxLoggedUsername is how much of a username a failed-login line quotes:
// more than any e-mail address, little enough that a client sending
// megabytes of name cannot fill the log.
const maxLoggedUsername = 256

// failLogin logs and counts a refused login, so that support can tell an
// expired licence from an unknown account and a typo. The client's answer
// says none of this: it is the same for every reason.
//
// The line names the username as typed (bounded and escaped), the API
// token by its fingerprint (never the token), the client address, the
// grant and the reason. Like the audit line of an issued token, it goes to
// the audit log, and is the request's access line when that is the same
// log: one line a request.
func (s *Server) failLogin(ctx context.Context, req *tokenRequest, reason license.Reason) {
	s.metrics.loginFailed(reason)
	if s.tracer != nil {
		// The reason word only: the username is an e-mail address.
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("tokenserver.login.failure", string(reason)))
	}
	if !s.audit.Enabled(ctx, slog.LevelInfo) {
		return
	}
	user, cut := logSafe(req.cred.Username, maxLoggedUsername)
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("reason", string(reason)), slog.String("username", user))
	if cut {
		attrs = append(attrs, slog.Int("username_bytes", len(req.cred.Username)))
	}
	if req.cred.Token != "" {
		attrs = append(attrs, slog.String("token_fp", license.Fingerprint(req.cred.Token)))
	}
	attrs = append(attrs, slog.String("client", req.client), slog.String("grant", req.grant))
	if req.clientID != "" {
		id, _ := logSafe(req.clientID, maxClientIDLen)
		attrs = append(attrs, slog.String("client_id", id))
	}
	if req.rec != nil && s.audit == s.log {
		req.rec.Msg = loginFailedMsg
		req.rec.Add(attrs...)
		return
	}
	s.audit.LogAttrs(ctx, slog.LevelInfo, loginFailedMsg, attrs...)
}

// logSafe is s as typed by a client, made safe to log with any handler:
// at most its first limit bytes (cut reports whether it was longer), with
// backslashes, invalid UTF-8 and every character that is not graphic
// (controls such as newline, format characters such as bidi overrides,
// line and paragraph separators) written as Go escapes (\\, \xff, \n,
// \u202e). The text handler quotes such values and the JSON handler
// escapes control characters anyway, but neither stops U+202E from
// turning a line's text around on a terminal, and an escaped value reads
// the same in both.
func logSafe(s string, limit int) (safe string, cut bool) {
	if len(s) > limit {
		s, cut = s[:limit], true
	}
	if !strings.ContainsFunc(s, needsEscape) {
		return s, cut
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case r == '\\':
			b.WriteString(`\\`)
		case !unicode.IsGraphic(r):
			q := strconv.QuoteRune(r) // '\n', '\x00', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String(), cut
}

// needsEscape: see logSafe. Invalid UTF-8 decodes as utf8.RuneError, so a
// real U+FFFD only costs the slow path.
func needsEscape(r rune) bool {
	return r == '\\' || r == utf8.RuneError || !unicode.IsGraphic(r)
}
