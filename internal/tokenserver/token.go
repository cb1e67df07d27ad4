package tokenserver

import (
	"context"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/jsonx"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/tracing"
	"github.com/acme/registry-gateway/pkg/auth"
)

// Bounds on what a client may send, far above anything real: e-mail
// addresses are at most 254 characters, API tokens a few dozen.
const (
	maxUsernameLen = 320
	maxPasswordLen = 4096
	maxClientIDLen = 64
)

// emptyPasswordMessage answers a Basic login without a password. After
// `docker login` a config.json holds an identity token (our refresh token)
// and an empty password; kubelet ignores identity tokens, so a pull secret
// made from that file sends the e-mail alone.
const emptyPasswordMessage = "empty password: an identity token (what docker login stores in config.json) cannot be used as a password; " +
	"log in with your e-mail and API token, and for Kubernetes create the pull secret from them: " + emptyPasswordHelp

// emptyPasswordHelp ends emptyPasswordMessage when customer_help_url is
// not set: the page a vendor hands its customers.
const emptyPasswordHelp = "see docs/customers.md#kubernetes"

// withHelp appends the customer help page's section anchor to a refusal
// when customer_help_url is known.
func (s *Server) withHelp(msg, anchor string) string {
	if help := s.cfg.helpURL(); help != "" {
		return msg + " (help: " + help + "#" + anchor + ")"
	}
	return msg
}

// auditMsg is the message of the audit line of an issued token.
const auditMsg = "token issued"

// OAuth2 error codes (RFC 6749 §5.2) sent with POST errors.
const (
	oauthInvalidRequest   = "invalid_request"
	oauthInvalidGrant     = "invalid_grant"
	oauthUnsupportedGrant = "unsupported_grant_type"
	oauthUnavailable      = "temporarily_unavailable"
	oauthServerError      = "server_error"
)

// tokenRequest is a token request after parsing, whichever form it came in.
type tokenRequest struct {
	// rec is the request's access record: the audit and failed-login
	// fields go on it when the audit log is the access log.
	rec      *httpx.Record
	grant    string
	client   string // client address
	clientID string
	cred     license.Credentials
	scopes   []auth.ResourceActions
	// offline asks for a new refresh token.
	offline bool
	// refresh is the refresh token presented with the refresh_token grant;
	// it is answered back as is, valid for the rest of its life.
	refresh   string
	refreshID string
}

// tokenResult is an issued token.
type tokenResult struct {
	token     string
	refresh   string
	issuedAt  time.Time
	expiresIn int
	granted   []auth.ResourceActions
}

// tokenResponse is the JSON answer. GET answers carry token and
// access_token (clients read either); POST answers are the OAuth2 form.
// appendJSON writes it as encoding/json would with these tags.
type tokenResponse struct {
	Token        string `json:"token,omitempty"`
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// appendJSON appends the answer's JSON and a newline, what
// httpx.WriteJSON writes for it, without reflection: the token (a few KB
// with x5c, twice in a GET answer) is every answer's bulk, and
// encoding/json would scan it byte by byte for characters to escape.
func (r *tokenResponse) appendJSON(b []byte) []byte {
	b = append(b, '{')
	var token []byte // r.Token as encoded
	if r.Token != "" {
		b = append(b, `"token":`...)
		start := len(b)
		b = jsonx.AppendString(b, r.Token)
		token = b[start:]
		b = append(b, ',')
	}
	b = append(b, `"access_token":`...)
	if token != nil && r.AccessToken == r.Token {
		b = append(b, token...) // the same token: encoded once
	} else {
		b = jsonx.AppendString(b, r.AccessToken)
	}
	if r.TokenType != "" {
		b = jsonx.AppendString(append(b, `,"token_type":`...), r.TokenType)
	}
	b = strconv.AppendInt(append(b, `,"expires_in":`...), int64(r.ExpiresIn), 10)
	b = jsonx.AppendString(append(b, `,"issued_at":`...), r.IssuedAt)
	if r.RefreshToken != "" {
		b = jsonx.AppendString(append(b, `,"refresh_token":`...), r.RefreshToken)
	}
	if r.Scope != "" {
		b = jsonx.AppendString(append(b, `,"scope":`...), r.Scope)
	}
	return append(b, '}', '\n')
}

// getToken is the token endpoint of the registry token spec: query
// parameters and Basic credentials.
func (s *Server) getToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	res, err := s.getTokenRequest(r)
	s.metrics.observe(grantBasic, outcomeOf(statusOf(err)), time.Since(start))
	if err != nil {
		s.errs.WriteError(w, r, err)
		return
	}
	writeToken(w, &tokenResponse{
		Token:        res.token,
		AccessToken:  res.token,
		ExpiresIn:    res.expiresIn,
		IssuedAt:     res.issuedAt.UTC().Format(time.RFC3339),
		RefreshToken: res.refresh,
	})
}

func (s *Server) getTokenRequest(r *http.Request) (*tokenResult, error) {
	q := r.URL.Query()
	if err := s.checkService(q.Get("service")); err != nil {
		return nil, err
	}
	offline := false
	if v := q.Get("offline_token"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("offline_token must be true or false")
		}
		offline = b
	}
	scopes, err := parseScopes(q["scope"])
	if err != nil {
		return nil, err
	}
	username, password, ok := r.BasicAuth()
	req := &tokenRequest{
		rec:      httpx.RecordOf(r.Context()),
		grant:    grantBasic,
		client:   s.clients.Of(r),
		clientID: q.Get("client_id"),
		cred:     license.Credentials{Username: username, Token: password},
		scopes:   scopes,
		offline:  offline,
	}
	ctx := r.Context()
	if ok && username != "" && password == "" {
		// Not a guess, so the limiter is not charged: a client sending what
		// `docker login` stored (an identity token and no password), e.g.
		// through a Kubernetes pull secret made from config.json.
		s.failLogin(ctx, req, license.ReasonMalformed)
		return nil, s.unauthorized(s.emptyPassword)
	}
	if !ok || username == "" || password == "" {
		s.failLogin(ctx, req, license.ReasonMalformed)
		return nil, s.unauthorized("authentication required: Basic credentials (e-mail and API token)")
	}
	if len(username) > maxUsernameLen || len(password) > maxPasswordLen {
		s.limiter.Charge(req.client, "")
		s.failLogin(ctx, req, license.ReasonMalformed)
		return nil, s.unauthorized(s.badCredentials)
	}
	if account := q.Get("account"); account != "" && account != username {
		s.failLogin(ctx, req, license.ReasonMalformed)
		return nil, badRequest("account does not match the username of the credentials")
	}
	return s.issue(ctx, req)
}

// postToken is the OAuth2 form of the token endpoint, which containerd
// tries first and which carries refresh tokens. Every error is 400 or 401
// (never 403, which containerd would not fall back from) and carries the
// OAuth2 "error" field besides the registry error list.
func (s *Server) postToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	grant := grantOther
	res, err := s.postTokenRequest(r, &grant)
	s.metrics.observe(grant, outcomeOf(statusOf(err)), time.Since(start))
	if err != nil {
		s.errs.WriteError(w, r, oauthError(err))
		return
	}
	writeToken(w, &tokenResponse{
		AccessToken:  res.token,
		TokenType:    "Bearer",
		ExpiresIn:    res.expiresIn,
		IssuedAt:     res.issuedAt.UTC().Format(time.RFC3339),
		RefreshToken: res.refresh,
		Scope:        scopeString(res.granted),
	})
}

func (s *Server) postTokenRequest(r *http.Request, grant *string) (*tokenResult, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("the body must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, httpx.Errorf(http.StatusRequestEntityTooLarge, httpx.CodeTooLarge, "request body too large")
		}
		return nil, badRequest("malformed form body")
	}
	f := r.PostForm
	if err := s.checkService(f.Get("service")); err != nil {
		return nil, err
	}
	scopes, err := parseScopes(f["scope"])
	if err != nil {
		return nil, err
	}
	req := &tokenRequest{rec: httpx.RecordOf(r.Context()), client: s.clients.Of(r), clientID: f.Get("client_id"), scopes: scopes}
	ctx := r.Context()
	switch f.Get("grant_type") {
	case "password":
		*grant, req.grant = grantPass, grantPass
		switch f.Get("access_type") {
		case "offline":
			req.offline = true
		case "", "online":
		default:
			return nil, badRequest("access_type must be online or offline")
		}
		username, password := f.Get("username"), f.Get("password")
		req.cred = license.Credentials{Username: username, Token: password}
		if username == "" || password == "" {
			s.failLogin(ctx, req, license.ReasonMalformed)
			return nil, badRequest("username and password are required")
		}
		if len(username) > maxUsernameLen || len(password) > maxPasswordLen {
			s.limiter.Charge(req.client, "")
			s.failLogin(ctx, req, license.ReasonMalformed)
			return nil, s.unauthorized(s.badCredentials)
		}
	case "refresh_token":
		*grant, req.grant = grantRefresh, grantRefresh
		raw, username := f.Get("refresh_token"), f.Get("username")
		req.cred.Username = username // the refresh token's, once it opens
		if raw == "" {
			s.failLogin(ctx, req, license.ReasonMalformed)
			return nil, badRequest("refresh_token is required")
		}
		if wait := s.limiter.Check(req.client, username); wait > 0 {
			s.failLogin(ctx, req, license.ReasonRateLimited)
			return nil, tooManyRequests(wait)
		}
		rc, err := s.sealer.open(raw, s.cfg.Service, s.now())
		if err != nil {
			s.limiter.Charge(req.client, username)
			reason := license.ReasonWrongToken // forged, garbled, another service's
			if e, ok := errors.AsType[*refreshExpiredError](err); ok {
				reason, req.cred = license.ReasonExpired, e.cred
			}
			s.failLogin(ctx, req, reason)
			return nil, s.unauthorized("refresh token invalid or expired")
		}
		if username != "" && username != rc.Subject {
			req.cred.Token = rc.Token // for its fingerprint
			s.failLogin(ctx, req, license.ReasonMalformed)
			e := badRequest("username does not match the refresh token")
			e.Extra = map[string]string{"error": oauthInvalidGrant, "error_description": e.Message}
			return nil, e
		}
		req.cred = license.Credentials{Username: rc.Subject, Token: rc.Token}
		req.refresh, req.refreshID = raw, rc.ID
	case "":
		return nil, badRequest("grant_type is required")
	default:
		e := badRequest("unsupported grant_type; use password or refresh_token")
		e.Extra = map[string]string{"error": oauthUnsupportedGrant, "error_description": e.Message}
		return nil, e
	}
	return s.issue(ctx, req)
}

// issue is the path every grant ends in: rate limit, licence, grant, sign.
func (s *Server) issue(ctx context.Context, req *tokenRequest) (*tokenResult, error) {
	username := req.cred.Username
	if wait := s.limiter.Check(req.client, username); wait > 0 {
		s.failLogin(ctx, req, license.ReasonRateLimited)
		return nil, tooManyRequests(wait)
	}
	if s.tracer != nil {
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("tokenserver.grant", req.grant), attribute.Int("tokenserver.scopes", len(req.scopes)))
	}
	lookupCtx, span := s.tracer.Start(ctx, "licence lookup", trace.SpanKindInternal)
	lic, err := s.licenses.Lookup(lookupCtx, req.cred)
	endLookupSpan(span, err)
	switch {
	case errors.Is(err, license.ErrBadCredentials):
		s.limiter.Charge(req.client, username)
		s.failLogin(ctx, req, license.ReasonOf(err))
		if req.grant == grantRefresh {
			return nil, s.unauthorized(s.withHelp("refresh token no longer valid: log in again", "refresh"))
		}
		return nil, s.unauthorized(s.badCredentials)
	case err != nil:
		s.failLogin(ctx, req, license.ReasonUnavailable)
		return nil, (&httpx.Error{
			Status:  http.StatusServiceUnavailable,
			Code:    httpx.CodeUnavailable,
			Message: "licence service unavailable, try again later",
			Err:     err,
		}).WithHeader("Retry-After", "5")
	}

	granted, catalog := Grant(req.scopes, lic)
	claims, ttl := s.claims(lic, granted, catalog)
	_, span = s.tracer.Start(ctx, "sign token", trace.SpanKindInternal,
		attribute.String("jwt.alg", s.key.Method.Alg()), attribute.Int("tokenserver.granted", len(granted)))
	token, err := s.key.Sign(claims)
	if err != nil {
		tracing.Fail(span, "signing failed")
		span.End()
		return nil, err
	}
	span.End()
	now := claims.IssuedAt.Time
	res := &tokenResult{token: token, issuedAt: now, expiresIn: int(ttl / time.Second), granted: granted, refresh: req.refresh}

	refreshID := req.refreshID
	if req.offline && res.refresh == "" {
		refreshID = auth.NewTokenID()
		res.refresh, err = s.sealer.seal(&refreshClaims{
			Subject:   username,
			Token:     req.cred.Token,
			IssuedAt:  now.Unix(),
			ExpiresAt: now.Add(s.cfg.RefreshTokenTTL).Unix(),
			ID:        refreshID,
			Service:   s.cfg.Service,
		})
		if err != nil {
			return nil, err
		}
	}
	s.auditIssued(ctx, req, claims, refreshID)
	return res, nil
}

// claims are the claims of a token for lic granting granted (and, with
// catalog, carrying the licence's channels for the gateway's catalogue),
// and its lifetime.
func (s *Server) claims(lic license.License, granted []auth.ResourceActions, catalog bool) (*auth.Claims, time.Duration) {
	// The owner's address as the backend spells it, or the username given
	// when the backend cannot know the owner (license.Cache fills it in).
	sub := lic.Account
	now := s.now().Truncate(time.Second)
	ttl := s.cfg.TokenTTL
	if !lic.ExpiresAt.IsZero() && lic.ExpiresAt.Before(now.Add(ttl)) {
		// Never hand out access that outlives the licence, but keep the
		// 60 s minimum clients need to use a token at all.
		ttl = max(lic.ExpiresAt.Sub(now).Truncate(time.Second), time.Minute)
	}
	claims := &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   sub,
			Audience:  s.audience,
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        auth.NewTokenID(),
		},
		Access: granted,
	}
	if catalog {
		claims.Channels = lic.Channels
	}
	return claims, ttl
}

// auditIssued writes the one audit line of an issued token. It names the
// token by jti; the token itself, like any secret, never reaches a log.
// When the audit and access lines go to the same log, the audit line is
// the request's access line ("token issued" with the audit fields): one
// record and one write a token rather than two.
func (s *Server) auditIssued(ctx context.Context, req *tokenRequest, c *auth.Claims, refreshID string) {
	if !s.audit.Enabled(ctx, slog.LevelInfo) {
		return
	}
	scopes := make([]string, len(c.Access))
	for i, ra := range c.Access {
		scopes[i] = ra.String()
	}
	attrs := []slog.Attr{
		slog.String("sub", c.Subject),
		// Which API token was used, without it: with an HTTP backend that
		// has no username_path, sub is whatever the client typed.
		slog.String("token_fp", license.Fingerprint(req.cred.Token)),
		slog.Any("scopes", scopes),
		slog.String("jti", c.ID),
		slog.String("client", req.client),
		slog.String("grant", req.grant),
		slog.Int64("exp", c.ExpiresAt.Unix()),
	}
	if req.clientID != "" {
		attrs = append(attrs, slog.String("client_id", truncate(req.clientID, maxClientIDLen)))
	}
	if refreshID != "" {
		attrs = append(attrs, slog.String("refresh_jti", refreshID))
	}
	if req.rec != nil && s.audit == s.log {
		req.rec.Msg = auditMsg
		req.rec.Add(attrs...)
		return
	}
	s.audit.LogAttrs(ctx, slog.LevelInfo, auditMsg, attrs...)
}

func (s *Server) checkService(service string) error {
	if service != "" && service != s.cfg.Service {
		return badRequest("unknown service " + strconv.Quote(truncate(service, 100)))
	}
	return nil
}

func parseScopes(params []string) ([]auth.ResourceActions, error) {
	scopes, err := auth.ParseScopes(params)
	if err != nil {
		if errors.Is(err, auth.ErrTooManyScopes) {
			return nil, badRequest("too many scopes: at most " + strconv.Itoa(auth.MaxScopes))
		}
		return nil, badRequest(err.Error()) // a ScopeError names the scope
	}
	return scopes, nil
}

func (s *Server) unauthorized(msg string) *httpx.Error {
	return httpx.Errorf(http.StatusUnauthorized, httpx.CodeUnauthorized, msg).WithHeader("WWW-Authenticate", s.challenge)
}

func badRequest(msg string) *httpx.Error {
	return httpx.Errorf(http.StatusBadRequest, httpx.CodeInvalidRequest, msg)
}

func tooManyRequests(wait time.Duration) *httpx.Error {
	return httpx.Errorf(http.StatusTooManyRequests, httpx.CodeTooManyRequests, "too many failed logins, try again later").
		WithHeader("Retry-After", retryAfter(wait))
}

// oauthError adds the OAuth2 "error" field a POST client looks for.
func oauthError(err error) error {
	e, ok := errors.AsType[*httpx.Error](err)
	if !ok {
		e = &httpx.Error{Status: http.StatusInternalServerError, Code: httpx.CodeUnknown, Message: "internal error", Err: err}
	}
	if e.Extra != nil {
		return e
	}
	code := oauthInvalidRequest
	switch e.Status {
	case http.StatusUnauthorized:
		code = oauthInvalidGrant
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		code = oauthUnavailable
	case http.StatusInternalServerError:
		code = oauthServerError
	}
	e.Extra = map[string]string{"error": code, "error_description": e.Message}
	return e
}

func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if e, ok := errors.AsType[*httpx.Error](err); ok {
		return e.Status
	}
	return http.StatusInternalServerError
}

func writeToken(w http.ResponseWriter, resp *tokenResponse) {
	// RFC 6749 §5.1: responses with tokens must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	size := len(resp.Token) + len(resp.AccessToken) + len(resp.RefreshToken) + len(resp.Scope) + len(resp.IssuedAt) + 160
	httpx.WriteJSONBody(w, http.StatusOK, resp.appendJSON(make([]byte, 0, size)))
}

func scopeString(ras []auth.ResourceActions) string {
	var b strings.Builder
	for i, ra := range ras {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(ra.String())
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// endLookupSpan ends the licence look-up's span with its outcome: granted,
// the refusal's reason word (wrong_token, expired, …) or unavailable.
// Never the error's text: a licence API's error may hold its URL or what
// the client sent.
func endLookupSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	outcome := "granted"
	switch {
	case errors.Is(err, license.ErrBadCredentials):
		outcome = string(license.ReasonOf(err))
	case err != nil:
		outcome = string(license.ReasonUnavailable)
		tracing.Fail(span, "licence backend unavailable")
	}
	span.SetAttributes(attribute.String("tokenserver.licence.outcome", outcome))
	span.End()
}
