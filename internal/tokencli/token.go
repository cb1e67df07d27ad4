package tokencli

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

// passwordEnv is read when -p is not given, so that the API token stays
// out of shell history and `ps`.
const passwordEnv = "TOKENSERVER_PASSWORD"

// Challenge is a parsed `WWW-Authenticate` header.
type Challenge struct {
	Scheme string
	Params map[string]string // keys lower-cased
}

// ParseChallenge parses one challenge of a WWW-Authenticate header:
// `Bearer realm="…",service="…",scope="a b"`. Values may be quoted (with
// backslash escapes) or bare tokens.
func ParseChallenge(h string) (Challenge, error) {
	h = strings.TrimSpace(h)
	// RFC 7235: the scheme ends at the first blank, a tab as well as a
	// space.
	scheme, rest := h, ""
	if i := strings.IndexAny(h, " \t"); i >= 0 {
		scheme, rest = h[:i], h[i+1:]
	}
	if scheme == "" {
		return Challenge{}, errors.New("empty WWW-Authenticate header")
	}
	c := Challenge{Scheme: scheme, Params: map[string]string{}}
	s := strings.TrimSpace(rest)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return c, fmt.Errorf("WWW-Authenticate: parameter without value near %q", s)
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		if strings.ContainsAny(key, " \t") {
			// `Basic realm=…`: a second challenge; clients use the first.
			break
		}
		s = strings.TrimLeft(s[eq+1:], " ")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i, closed := 1, false
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if s[i] == '"' {
					closed = true
					break
				}
				b.WriteByte(s[i])
			}
			if !closed {
				return c, fmt.Errorf("WWW-Authenticate: unterminated quoted value for %s", key)
			}
			val, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		c.Params[key] = val
		s = strings.TrimLeft(s, " ")
		if s != "" {
			if s[0] != ',' {
				// A second challenge (`…, Basic realm=…`) follows; clients
				// use the first Bearer one.
				break
			}
			s = strings.TrimLeft(s[1:], " ")
		}
	}
	return c, nil
}

type tokenOptions struct {
	username, password string
	scopes             multiFlag
	realm, registry    string
	service            string
	post               bool
	insecure           bool
	plainHTTP          bool
	asJSON, raw        bool
	keys               keyOptions
}

// tokenResult is the --json output of the token command.
type tokenResult struct {
	Registry   string         `json:"registry,omitempty"`
	Challenge  map[string]any `json:"challenge,omitempty"`
	Realm      string         `json:"realm"`
	Service    string         `json:"service,omitempty"`
	Status     int            `json:"status"`
	Error      string         `json:"error,omitempty"`
	Hint       string         `json:"hint,omitempty"`
	ExpiresIn  *int64         `json:"expires_in,omitempty"`
	IssuedAt   string         `json:"issued_at,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
	Scopes     []scopeResult  `json:"scopes,omitempty"`
	Checks     []checkResult  `json:"checks,omitempty"`
	Token      *report        `json:"token,omitempty"`
	Successful bool           `json:"ok"`
}

type scopeResult struct {
	Scope     string   `json:"scope"`
	Requested []string `json:"requested"`
	Granted   []string `json:"granted"`
}

func (s scopeResult) complete() bool {
	for _, a := range s.Requested {
		if !slices.Contains(s.Granted, a) && !slices.Contains(s.Granted, auth.ActionAll) {
			return false
		}
	}
	return true
}

type checkResult struct {
	Request string `json:"request"`
	Status  int    `json:"status"`
	Note    string `json:"note,omitempty"`
}

func (e *env) token(ctx context.Context, args []string) int {
	fs := e.newFlagSet("token", "-u USER [-p PASSWORD|-] [--scope SCOPE]... (--registry URL | --realm URL) [--jwks URL]")
	var o tokenOptions
	fs.StringVar(&o.username, "u", "", "user name (the customer's e-mail)")
	fs.StringVar(&o.username, "username", "", "same as -u")
	fs.StringVar(&o.password, "p", "", "password (API token); - reads it from stdin; default $"+passwordEnv)
	fs.StringVar(&o.password, "password", "", "same as -p")
	fs.Var(&o.scopes, "scope", "scope to ask for, e.g. repository:stable/hello:pull (repeatable; none = what `docker login` asks)")
	fs.StringVar(&o.registry, "registry", "", "registry (gateway) URL or host: read the realm from its /v2/ challenge, then test the token on it")
	fs.StringVar(&o.realm, "realm", "", "token endpoint URL, to skip the challenge")
	fs.StringVar(&o.service, "service", "", "service parameter (default: from the challenge)")
	fs.BoolVar(&o.post, "post", false, "ask like containerd: POST grant_type=password instead of GET")
	fs.BoolVar(&o.insecure, "insecure", false, "skip TLS certificate verification")
	fs.BoolVar(&o.plainHTTP, "plain-http", false, "use http:// for a --registry given without scheme")
	fs.BoolVar(&o.asJSON, "json", false, "print JSON for scripts")
	fs.BoolVar(&o.raw, "raw", false, "print only the token (for piping into inspect)")
	o.keys.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "tokenserver token: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if (o.realm == "") == (o.registry == "") {
		fmt.Fprintln(e.stderr, "tokenserver token: give one of --registry URL or --realm URL")
		return exitUsage
	}
	if _, err := auth.ParseScopes(o.scopes); err != nil {
		fmt.Fprintf(e.stderr, "tokenserver token: %v\n", err)
		return exitUsage
	}
	if err := e.readPassword(&o); err != nil {
		fmt.Fprintf(e.stderr, "tokenserver token: %v\n", err)
		return exitUsage
	}
	if o.insecure && o.keys.cacert != "" {
		fmt.Fprintln(e.stderr, "tokenserver token: give --cacert or --insecure, not both")
		return exitUsage
	}
	if err := e.trustCA(o.keys.cacert); err != nil {
		fmt.Fprintf(e.stderr, "tokenserver token: %v\n", err)
		return exitUsage
	}
	if o.insecure {
		c := *e.client
		c.Transport = &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // asked for with --insecure
		}
		e.client = &c
	}

	res, code := e.runFlow(ctx, o)
	switch {
	case o.raw:
		if res.Token == nil {
			fmt.Fprintf(e.stderr, "tokenserver token: no token: %s %s\n", res.Error, res.Hint)
			return code
		}
		fmt.Fprintln(e.stdout, res.Token.d.raw)
	case o.asJSON:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	default:
		e.writeTokenText(res)
	}
	return code
}

func (e *env) readPassword(o *tokenOptions) error {
	switch {
	case o.password == "-":
		p, err := e.readStdinLine("password")
		if err != nil {
			return err
		}
		o.password = p
	case o.password == "":
		o.password = e.getenv(passwordEnv)
	}
	if o.username != "" && o.password == "" {
		return fmt.Errorf("no password for %s: pass -p - (stdin) or set %s", o.username, passwordEnv)
	}
	return nil
}

// readStdinLine reads one secret line from stdin (a password, an API
// token), so that it stays out of argv and shell history.
func (e *env) readStdinLine(what string) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the %s from stdin: %v", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty %s on stdin", what)
	}
	return line, nil
}

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
		res.Challenge = map[string]any{"scheme": ch.Scheme, "params": ch.Params}
		res.Realm = ch.Params["realm"]
		if res.Service == "" {
			res.Service = ch.Params["service"]
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
func (e *env) challenge(ctx context.Context, base *url.URL) (Challenge, int, error) {
	u := base.JoinPath("/v2/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Challenge{}, 0, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return Challenge{}, 0, fmt.Errorf("could not reach the registry: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxInput))
	if resp.StatusCode != http.StatusUnauthorized {
		return Challenge{}, resp.StatusCode, fmt.Errorf("GET %s answered %s without credentials; clients only log in after a 401 with a Bearer challenge", u, resp.Status)
	}
	hdrs := resp.Header.Values("WWW-Authenticate")
	if len(hdrs) == 0 {
		return Challenge{}, resp.StatusCode, fmt.Errorf("GET %s answered 401 without a WWW-Authenticate header", u)
	}
	var first error
	for _, h := range hdrs {
		ch, err := ParseChallenge(h)
		if err != nil {
			first = cmp(first, err)
			continue
		}
		if !strings.EqualFold(ch.Scheme, "Bearer") {
			first = cmp(first, fmt.Errorf("the challenge is %s, not Bearer: the registry wants Basic credentials on every request and has no token service", ch.Scheme))
			continue
		}
		if ch.Params["realm"] == "" {
			return ch, resp.StatusCode, errors.New("the Bearer challenge has no realm")
		}
		return ch, resp.StatusCode, nil
	}
	return Challenge{}, resp.StatusCode, first
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
				if ch, err := ParseChallenge(h); err == nil && ch.Params["error"] != "" {
					c.Note += " [challenge error=" + ch.Params["error"] + "]"
				}
			}
		}
		out = append(out, c)
	}
	return out
}

func (e *env) writeTokenText(res *tokenResult) {
	st := e.style()
	w := e.stdout
	fmt.Fprintln(w, st.bold("Request"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if res.Registry != "" {
		fmt.Fprintf(tw, "  registry\t%s\n", res.Registry)
	}
	if res.Challenge != nil {
		fmt.Fprintf(tw, "  challenge\t%s\n", compact(res.Challenge["params"]))
	}
	if res.Realm != "" {
		fmt.Fprintf(tw, "  realm\t%s\n", res.Realm)
	}
	if res.Service != "" {
		fmt.Fprintf(tw, "  service\t%s\n", res.Service)
	}
	if res.Status != 0 {
		status := fmt.Sprintf("%d %s", res.Status, http.StatusText(res.Status))
		if res.Status == http.StatusOK {
			status = st.green(status)
		} else {
			status = st.red(status)
		}
		fmt.Fprintf(tw, "  answer\t%s\n", status)
	}
	if res.ExpiresIn != nil {
		fmt.Fprintf(tw, "  expires_in\t%ds\n", *res.ExpiresIn)
	}
	if res.IssuedAt != "" {
		fmt.Fprintf(tw, "  issued_at\t%s\n", res.IssuedAt)
	}
	tw.Flush()
	if res.Error != "" {
		fmt.Fprintf(w, "  %s %s\n", st.red("FAILED"), res.Error)
		if res.Hint != "" {
			fmt.Fprintf(w, "  hint: %s\n", res.Hint)
		}
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "  %s %s\n", st.yellow("warning:"), warn)
	}
	if res.Token == nil {
		return
	}

	if len(res.Scopes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.bold("Scopes"))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SCOPE\tREQUESTED\tGRANTED\tRESULT")
		for _, s := range res.Scopes {
			verdict := st.green("granted")
			if !s.complete() {
				verdict = st.red("NOT GRANTED")
				if len(s.Granted) > 0 {
					verdict = st.yellow("partly granted")
				}
			}
			granted := strings.Join(s.Granted, ",")
			if granted == "" {
				granted = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Scope, strings.Join(s.Requested, ","), granted, verdict)
		}
		tw.Flush()
		for _, s := range res.Scopes {
			if !s.complete() {
				fmt.Fprintf(w, "  hint: the token service leaves out what the account may not have (for a repository: the account does not hold channel %q); the registry then answers 401\n",
					auth.Channel(strings.SplitN(s.Scope, ":", 3)[1]))
				break
			}
		}
	}

	if len(res.Checks) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.bold("Registry with this token"))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range res.Checks {
			status := "error"
			if c.Status != 0 {
				status = fmt.Sprintf("%d", c.Status)
			}
			if c.Status/100 == 2 {
				status = st.green(status)
			} else {
				status = st.red(status)
			}
			if c.Note == "" {
				fmt.Fprintf(tw, "  %s\t%s\n", c.Request, status)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Request, status, c.Note)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	e.writeText(w, res.Token)
}
