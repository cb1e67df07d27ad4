// The login flow of the `token` command, done the way a client does it: the
// registry's /v2/ challenge (parsed with auth.ParseChallenge), the token
// request to the realm, then the token used on the registry.

package tokencli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

// registryBase turns --registry into a base URL.
func registryBase(reg string, plainHTTP bool) (*url.URL, error) {
	if !strings.Contains(reg, "://") {
		scheme := "https://"
		if plainHTTP {
			scheme = "http://"
		}
		reg = scheme + reg
	}
	u, err := url.Parse(reg)
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, fmt.Errorf("registry %q has no host", reg)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// runFlow does what a client does: challenge, token request, then the token
// on the registry. It returns the result and the exit code.
func (e *env) runFlow(ctx context.Context, o tokenOptions) (*tokenResult, int) {
	res := &tokenResult{Realm: o.realm, Service: o.service}
	var base *url.URL
	if o.registry != "" {
		var err error
		if base, err = registryBase(o.registry, o.plainHTTP); err != nil {
			res.Error = err.Error()
			return res, exitUsage
		}
		res.Registry = base.String()
		ch, status, err := e.challenge(ctx, base)
		res.Status = status
		if err != nil {
			res.Error = err.Error()
			return res, exitFail
		}
		res.Challenge = map[string]any{"scheme": auth.ChallengeScheme, "params": ch.Params()}
		res.Realm = ch.Realm
		if res.Service == "" {
			res.Service = ch.Service
		}
	}

	if o.keys.audience == "" {
		// The service the registry named is the audience it checks.
		o.keys.audience = res.Service
	}
	answer, err := e.requestToken(ctx, o, res)
	if err != nil {
		if res.Error == "" {
			res.Error = err.Error()
		}
		return res, exitFail
	}
	d, err := decodeToken(answer)
	if err != nil {
		res.Error = "the token endpoint answered 200 but the token does not decode: " + err.Error()
		return res, exitFail
	}
	res.Token = e.buildReport(ctx, d, o.keys)

	scopes, _ := auth.ParseScopes(o.scopes)
	complete := true
	for _, s := range scopes {
		sr := scopeResult{Scope: s.String(), Requested: s.Actions, Granted: []string{}}
		for _, ra := range d.claims.Access {
			if ra.Type == s.Type && ra.Name == s.Name {
				sr.Granted = append(sr.Granted, ra.Actions...)
			}
		}
		complete = complete && sr.complete()
		res.Scopes = append(res.Scopes, sr)
	}

	checksOK := true
	if base != nil {
		res.Checks = e.tryToken(ctx, base, answer, scopes)
		for _, c := range res.Checks {
			checksOK = checksOK && c.Status/100 == 2
		}
	}
	res.Successful = complete && checksOK && !res.Token.failed()
	if !res.Successful {
		return res, exitFail
	}
	return res, exitOK
}

// challenge asks the registry's /v2/ anonymously, as every client does
// first, and returns its Bearer challenge.
func (e *env) challenge(ctx context.Context, base *url.URL) (auth.Challenge, int, error) {
	u := base.JoinPath("/v2/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return auth.Challenge{}, 0, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return auth.Challenge{}, 0, fmt.Errorf("could not reach the registry: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxInput))
	if resp.StatusCode != http.StatusUnauthorized {
		return auth.Challenge{}, resp.StatusCode, fmt.Errorf("GET %s answered %s without credentials; clients only log in after a 401 with a Bearer challenge", u, resp.Status)
	}
	hdrs := resp.Header.Values("WWW-Authenticate")
	if len(hdrs) == 0 {
		return auth.Challenge{}, resp.StatusCode, fmt.Errorf("GET %s answered 401 without a WWW-Authenticate header", u)
	}
	var first error
	for _, h := range hdrs {
		ch, err := auth.ParseChallenge(h)
		var se *auth.SchemeError
		if errors.As(err, &se) {
			first = cmp(first, fmt.Errorf("the challenge is %s, not Bearer: the registry wants Basic credentials on every request and has no token service", se.Scheme))
			continue
		}
		if err != nil {
			first = cmp(first, err)
			continue
		}
		if ch.Realm == "" {
			return ch, resp.StatusCode, errors.New("the Bearer challenge has no realm")
		}
		return ch, resp.StatusCode, nil
	}
	return auth.Challenge{}, resp.StatusCode, first
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// requestToken asks the realm for a token with Basic credentials and returns
// the raw token. Refusals are recorded in res with a hint.
func (e *env) requestToken(ctx context.Context, o tokenOptions, res *tokenResult) (string, error) {
	realm, err := url.Parse(res.Realm)
	if err != nil || realm.Host == "" {
		return "", fmt.Errorf("realm %q is not an absolute URL", res.Realm)
	}
	var req *http.Request
	if o.post {
		form := url.Values{"grant_type": {"password"}, "client_id": {"tokenserver-cli"}, "username": {o.username}, "password": {o.password}}
		if res.Service != "" {
			form.Set("service", res.Service)
		}
		if len(o.scopes) > 0 {
			form.Set("scope", strings.Join(o.scopes, " "))
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := realm.Query()
		if res.Service != "" {
			q.Set("service", res.Service)
		}
		for _, s := range o.scopes {
			q.Add("scope", s)
		}
		if o.username != "" {
			q.Set("account", o.username)
		}
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err == nil && o.username != "" {
			req.SetBasicAuth(o.username, o.password)
		}
	}
	if err != nil {
		return "", err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("could not reach the token service: %w", err)
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxInput))
	if resp.StatusCode != http.StatusOK {
		res.Error = fmt.Sprintf("the token service answered %s: %s", resp.Status, errorText(body))
		res.Hint = tokenHint(resp.StatusCode, o.username != "")
		return "", errors.New(res.Error)
	}
	var answer struct {
		Token       string          `json:"token"`
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		IssuedAt    string          `json:"issued_at"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		res.Error = "the token service answered 200 with a body that is not JSON"
		return "", errors.New(res.Error)
	}
	res.IssuedAt = answer.IssuedAt
	if len(answer.ExpiresIn) > 0 {
		var n int64
		if err := json.Unmarshal(answer.ExpiresIn, &n); err != nil {
			res.Warnings = append(res.Warnings, "expires_in is not an integer: clients that decode it into an int fail")
		} else {
			res.ExpiresIn = &n
			if n < 60 {
				res.Warnings = append(res.Warnings, "expires_in is under 60 s: clients assume 60")
			}
		}
	} else {
		res.Warnings = append(res.Warnings, "no expires_in: containerd caches such a token forever")
	}
	if answer.IssuedAt == "" {
		res.Warnings = append(res.Warnings, "no issued_at")
	} else if _, err := time.Parse(time.RFC3339, answer.IssuedAt); err != nil {
		res.Warnings = append(res.Warnings, "issued_at is not RFC 3339")
	}
	tok := answer.Token
	if o.post {
		tok = answer.AccessToken // what containerd reads from a POST answer
	}
	switch {
	case answer.Token == "" && answer.AccessToken == "":
		res.Error = "the answer holds neither token nor access_token"
		return "", errors.New(res.Error)
	case answer.Token != answer.AccessToken:
		res.Warnings = append(res.Warnings, "token and access_token differ or one is missing: docker reads token, containerd access_token")
	}
	if tok == "" {
		tok = answer.Token + answer.AccessToken
	}
	return tok, nil
}

// errorText pulls the message out of a registry or OAuth2 error body.
func errorText(body []byte) string {
	var v struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"errors"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Details          string `json:"details"`
	}
	if json.Unmarshal(body, &v) == nil {
		var parts []string
		for _, e := range v.Errors {
			s := e.Code + ": " + e.Message
			if e.Detail != nil {
				s += " (" + compact(e.Detail) + ")"
			}
			parts = append(parts, s)
		}
		if v.Error != "" {
			parts = append(parts, strings.TrimSpace(v.Error+" "+v.ErrorDescription))
		}
		if v.Details != "" {
			parts = append(parts, v.Details)
		}
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func tokenHint(status int, withUser bool) string {
	switch {
	case status == http.StatusUnauthorized && !withUser:
		return "no credentials were sent: pass -u and -p"
	case status == http.StatusUnauthorized:
		return "the e-mail or API token is wrong, or the licence has expired (the token service does not say which, on purpose)"
	case status == http.StatusForbidden:
		return "the credentials were accepted but the request is refused; note that containerd does not retry a 403"
	case status == http.StatusBadRequest:
		return "the request itself was refused: check --scope and --service"
	case status == http.StatusTooManyRequests:
		return "rate limited: wait and retry"
	case status >= 500:
		return "the token service failed: is the licence backend reachable? see its log"
	}
	return ""
}

// tryToken uses the token on the registry the way a client would: /v2/
// (docker login's check) and the tag list of each repository asked for.
func (e *env) tryToken(ctx context.Context, base *url.URL, token string, scopes []auth.ResourceActions) []checkResult {
	paths := []string{"/v2/"}
	for _, s := range scopes {
		if s.Type == auth.TypeRepository && s.Has(auth.ActionPull) {
			paths = append(paths, "/v2/"+s.Name+"/tags/list")
		}
	}
	var out []checkResult
	for _, p := range paths {
		u := base.JoinPath(p)
		c := checkResult{Request: "GET " + base.Path + p}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			c.Note = err.Error()
			out = append(out, c)
			continue
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := e.client.Do(req)
		if err != nil {
			c.Note = err.Error()
			out = append(out, c)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxInput))
		resp.Body.Close()
		c.Status = resp.StatusCode
		switch {
		case resp.StatusCode/100 == 2 && strings.HasSuffix(p, "/tags/list"):
			var tags struct {
				Tags []string `json:"tags"`
			}
			if json.Unmarshal(body, &tags) == nil {
				c.Note = "tags: " + strings.Join(tags.Tags, ", ")
			}
		case resp.StatusCode/100 != 2:
			c.Note = errorText(body)
			if h := resp.Header.Get("WWW-Authenticate"); h != "" {
				if ch, err := auth.ParseChallenge(h); err == nil && ch.Error != "" {
					c.Note += " [challenge error=" + ch.Error + "]"
				}
			}
		}
		out = append(out, c)
	}
	return out
}
