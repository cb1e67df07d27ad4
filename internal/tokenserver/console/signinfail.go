package console

// The methods and reasons of a refused sign-in that Options.SignInFailed
// counts (tokenserver_console_sign_in_failures_total{method,reason}). They
// are a fixed list so that the metric's cardinality is bounded: nothing
// the browser or the provider sends becomes a label. A customer's sign-in
// with e-mail and API token is not among them: it is a login like /token's
// and counts with those by the licence source's reason (Options.LoginFailed).
const (
	// MethodOIDC is the vendor's single sign-on (console.oidc).
	MethodOIDC = "oidc"
	// MethodAdminKey is the vendor's sign-in with an admin API key.
	MethodAdminKey = "admin_key"
	// MethodLink is a customer's one-time sign-in link.
	MethodLink = "link"
)

const (
	// ReasonRateLimited: the failed-login limiter held the client back
	// (every method).
	ReasonRateLimited = "rate_limited"

	// ReasonProviderError: the provider sent the browser back with an
	// error (the user cancelled, or the provider refused them).
	ReasonProviderError = "provider_error"
	// ReasonProviderUnavailable: the provider's discovery could not be
	// read (503).
	ReasonProviderUnavailable = "provider_unavailable"
	// ReasonStateMismatch: no flow cookie, or its state is not the
	// callback's (a sign-in started elsewhere, or replayed).
	ReasonStateMismatch = "state_mismatch"
	// ReasonCodeExchange: the provider refused the code (or the PKCE
	// verifier).
	ReasonCodeExchange = "code_exchange"
	// ReasonIDTokenInvalid: the ID token's signature, issuer, audience,
	// expiry or claims did not verify.
	ReasonIDTokenInvalid = "id_token_invalid"
	// ReasonNonceMismatch: the ID token's nonce is not the flow cookie's.
	ReasonNonceMismatch = "nonce_mismatch"
	// ReasonNoEmail: the ID token carries no e-mail.
	ReasonNoEmail = "no_email"
	// ReasonEmailUnverified: the provider says the e-mail is not verified.
	ReasonEmailUnverified = "email_unverified"
	// ReasonDomainNotAllowed: the e-mail's domain is not one of
	// console.oidc.allowed_email_domains.
	ReasonDomainNotAllowed = "domain_not_allowed"
	// ReasonGroupNotAllowed: the user is in none of
	// console.oidc.allowed_groups.
	ReasonGroupNotAllowed = "group_not_allowed"

	// ReasonWrongKey: not an active admin key (unknown, revoked, expired).
	ReasonWrongKey = "wrong_key"

	// ReasonLinkUnknown: not a sign-in link of this console.
	ReasonLinkUnknown = "unknown_link"
	// ReasonLinkUsed: the link signed in once already.
	ReasonLinkUsed = "link_used"
	// ReasonLinkExpired: the link is past console.sign_in_link_ttl.
	ReasonLinkExpired = "link_expired"
)

// SignInFailureReasons lists, for each method, every reason
// Options.SignInFailed may be called with: the metric's series, created at
// 0 from the start so that rate() and increase() see the first refusal.
func SignInFailureReasons() map[string][]string {
	return map[string][]string{
		MethodOIDC: {ReasonRateLimited, ReasonProviderError, ReasonProviderUnavailable, ReasonStateMismatch, ReasonCodeExchange,
			ReasonIDTokenInvalid, ReasonNonceMismatch, ReasonNoEmail, ReasonEmailUnverified, ReasonDomainNotAllowed, ReasonGroupNotAllowed},
		MethodAdminKey: {ReasonRateLimited, ReasonWrongKey},
		MethodLink:     {ReasonRateLimited, ReasonLinkUnknown, ReasonLinkUsed, ReasonLinkExpired},
	}
}
