package gateway

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

// TokenVerifier checks a raw token; *auth.Verifier in production.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*auth.Claims, error)
}

var _ TokenVerifier = (*auth.Verifier)(nil)

// Reasons a request is refused besides auth.VerifyError's, for metrics.
const (
	reasonInsufficientScope = "insufficient_scope"
	reasonOther             = "other"
)

// authorizer checks that a request carries a token that grants what its
// route needs, and builds the Bearer challenges.
type authorizer struct {
	verifier TokenVerifier
	// realm and service start every challenge.
	realm, service string
	// failed counts refusals of presented tokens by reason.
	failed func(reason string)
	// help is customer_help_url: a channel refusal links its #channel
	// section.
	help string
}

func newAuthorizer(v TokenVerifier, realm, service string, failed func(string)) *authorizer {
	if failed == nil {
		failed = func(string) {}
	}
	return &authorizer{
		verifier: v,
		realm:    realm,
		service:  service,
		failed:   failed,
	}
}

// check returns the claims of the request's token when they grant route, or
// a *refusal: a 401 with the challenge. Always 401, never 403: containerd
// refetches a token on a 401 carrying error=, and never retries a 403.
func (a *authorizer) check(ctx context.Context, header string, route Route) (*auth.Claims, error) {
	raw, ok := bearerToken(header)
	if !ok {
		// No token, or Basic credentials sent straight here: the client
		// must go to the realm first.
		return nil, a.refuse(route, "", "authentication required", nil)
	}
	claims, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		reason := reasonOther
		var ve *auth.VerifyError
		if errors.As(err, &ve) {
			reason = ve.Reason
		}
		a.failed(reason)
		msg := "invalid token"
		if reason != reasonOther {
			msg += ": " + reason
		}
		e := a.refuse(route, "invalid_token", msg, err)
		// The reasons are stable words (expired, signature, …), safe to show.
		e.detail = map[string]string{"reason": reason}
		return nil, e
	}
	if !grants(claims, route) {
		a.failed(reasonInsufficientScope)
		msg, reason := denial(claims, route)
		if reason == deniedChannel && a.help != "" {
			msg += " (help: " + a.help + "#channel)"
		}
		e := a.refuse(route, "insufficient_scope", msg, nil)
		e.subject, e.denied = claims.Subject, reason
		return nil, e
	}
	return claims, nil
}

// denial says why a valid token does not open route, in words a customer
// can act on. The gateway sees only the token, but the token service grants
// pull on every repository of a licensed channel that the client asks for,
// and clients ask for the scope of the challenge before they give up: a
// token that names no repository of the channel (and, for a catalog token,
// does not carry the channel) means the license does not hold it. reason
// is the access line's word for it (deniedChannel, deniedRepository), empty
// for the catalog.
func denial(c *auth.Claims, route Route) (message, reason string) {
	if route.Kind == RouteCatalog {
		return "the token does not grant the catalog (" + auth.TypeRegistry + ":" + auth.CatalogName + ":" + auth.ActionAll + ")", ""
	}
	// The account tells a customer with several which login is in use;
	// it is nothing the holder of the token cannot read in it anyway.
	who := "the token"
	if c.Subject != "" {
		who += " of " + c.Subject
	}
	channel := auth.Channel(route.Name)
	if c.HoldsChannel(channel) || slices.ContainsFunc(c.Access, func(ra auth.ResourceActions) bool {
		return ra.Type == auth.TypeRepository && ra.Has(auth.ActionPull) && auth.Channel(ra.Name) == channel
	}) {
		return who + " does not grant pull on " + route.Name + " (it was issued for other repositories)", deniedRepository
	}
	return who + " does not grant pull on channel '" + channel + "' (the license does not include it)", deniedChannel
}

// grants reports whether claims cover the route: pull on exactly the
// repository named, or the catalog for /v2/_catalog. Any valid token opens
// /v2/ (docker login checks its token there).
func grants(c *auth.Claims, route Route) bool {
	switch route.Kind {
	case RouteBase:
		return true
	case RouteCatalog:
		return c.Allows(auth.TypeRegistry, auth.CatalogName, auth.ActionAll)
	case RouteManifest, RouteBlob, RouteTags, RouteReferrers:
		return c.Allows(auth.TypeRepository, route.Name, auth.ActionPull)
	}
	return false
}

// refuse builds the 401. The base route's challenge is realm and service
// only: that is what clients expect from /v2/, and they send no scope for
// it anyway.
func (a *authorizer) refuse(route Route, errCode, message string, cause error) *refusal {
	ch := auth.Challenge{Realm: a.realm, Service: a.service}
	if route.Kind != RouteBase {
		ch.Scope = route.Scope()
		if errCode != "" {
			// docker shows error_description as the reason of a refused
			// pull; skopeo and crane show the body's message; containerd
			// shows only the error word.
			ch.Error, ch.ErrorDescription = errCode, message
		}
	}
	e := &refusal{challenge: ch, message: message, cause: cause}
	if route.Kind != RouteBase && route.Kind != RouteUnknown {
		e.detail = []map[string]string{accessDetail(route)}
	}
	return e
}

// refusal is a 401 that carries its Bearer challenge, as distribution's
// token access controller does: the error sets its own WWW-Authenticate
// header, so that no handler assembles one and every 401 has one.
type refusal struct {
	challenge auth.Challenge
	// message is the body's message (the challenge's description is the
	// same text, kept to the characters RFC 6750 allows).
	message string
	// detail is the body's detail: the access asked for, or the reason a
	// token was refused.
	detail any
	cause  error
	// denied is why a valid token does not grant a repository
	// (deniedChannel, deniedRepository), and subject the token's subject:
	// set for those refusals only, for the access line and
	// gateway_pulls_total{kind="denied"}.
	denied, subject string
}

var _ error = (*refusal)(nil)

func (e *refusal) Error() string {
	if e.cause != nil {
		return "unauthorized: " + e.message + ": " + e.cause.Error()
	}
	return "unauthorized: " + e.message
}

func (e *refusal) Unwrap() error { return e.cause }

// SetHeaders sets the challenge on a response's header.
func (e *refusal) SetHeaders(h http.Header) {
	h.Set("Www-Authenticate", e.challenge.String())
}

// As lets the error adapter (errors.As to *httpx.Error) write the refusal:
// a 401 UNAUTHORIZED with the header SetHeaders sets.
func (e *refusal) As(target any) bool {
	p, ok := target.(**httpx.Error)
	if !ok {
		return false
	}
	he := &httpx.Error{
		Status:  http.StatusUnauthorized,
		Code:    httpx.CodeUnauthorized,
		Message: e.message,
		Detail:  e.detail,
		Header:  http.Header{},
		Err:     e.cause,
	}
	e.SetHeaders(he.Header)
	*p = he
	return true
}

// accessDetail is what distribution puts in an UNAUTHORIZED error's detail.
func accessDetail(route Route) map[string]string {
	if route.Kind == RouteCatalog {
		return map[string]string{"Type": auth.TypeRegistry, "Name": auth.CatalogName, "Action": auth.ActionAll}
	}
	return map[string]string{"Type": auth.TypeRepository, "Name": route.Name, "Action": auth.ActionPull}
}

// bearerToken extracts the token of a `Bearer <token>` header; the scheme is
// case-insensitive (RFC 7235).
func bearerToken(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	t := strings.TrimSpace(h[len(scheme):])
	return t, t != ""
}
