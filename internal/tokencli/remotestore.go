package tokencli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// adminPrefix is where the admin API's routes are under the --server URL.
const adminPrefix = "/admin/v1"

// Bounds of a call to the admin API: a server that does not answer, or
// answers without end, fails the command instead of hanging it.
const (
	remoteTimeout  = 30 * time.Second
	maxRemoteBody  = 8 << 20
	remotePage     = accounts.MaxPage
	maxRemotePages = 10000
)

// defaultRemoteName names a token `token add --server` makes without
// --name: the admin API wants a name, the database does not.
const defaultRemoteName = "cli"

// remoteStore is the admin API of a token service (--server), called with
// an admin key (--admin-key-file).
type remoteStore struct {
	base   *url.URL // the server with adminPrefix appended
	key    string
	client *http.Client
	now    func() time.Time
	// pageSize is the limit of a listing's page.
	pageSize int
}

var _ accountStore = (*remoteStore)(nil)

// newRemoteStore checks server and returns the store calling it. The key
// goes out only over HTTPS (plain HTTP only to the machine itself), and
// redirects are not followed, so that it reaches no other host.
func newRemoteStore(server, key string, client *http.Client, now func() time.Time) (*remoteStore, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, &accounts.Error{Kind: accounts.ErrInvalid, Msg: fmt.Sprintf("--server %q: want the token service's admin URL, https://HOST[:PORT]", server)}
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, &accounts.Error{Kind: accounts.ErrInvalid, Msg: fmt.Sprintf("--server %s: the admin key goes only over https (plain http only to localhost)", server)}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + adminPrefix
	c := *client
	if c.Timeout == 0 || c.Timeout > remoteTimeout {
		c.Timeout = remoteTimeout
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &remoteStore{base: u, key: key, client: &c, now: now, pageSize: remotePage}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// problemError is an RFC 9457 problem the admin API answered with.
type problemError struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// kind is the last part of the problem's type URI ("not-found").
func (p *problemError) kind() string {
	return p.Type[strings.LastIndexByte(p.Type, ':')+1:]
}

func (p *problemError) Error() string {
	switch {
	case p.kind() == "unknown-channel" && len(p.Errors) > 0:
		// The field's detail is the account store's own refusal, as the
		// local command prints it.
		return p.Errors[0].Detail
	case p.Status == http.StatusUnauthorized:
		return "the server refused the admin key (unknown, revoked or expired: see tokenserver accounts admin-key list on the server)"
	case p.Status == http.StatusPreconditionFailed:
		return "the account was changed by someone else since it was read; nothing changed: run the command again"
	}
	msg := p.Detail
	if msg == "" {
		msg = fmt.Sprintf("%d %s", p.Status, p.Title)
	}
	if len(p.Errors) > 0 {
		s := make([]string, len(p.Errors))
		for i, e := range p.Errors {
			s[i] = e.Field + ": " + e.Detail
		}
		msg += " (" + strings.Join(s, "; ") + ")"
	}
	return msg
}

// Is gives the problem the accounts error kind of its status, which picks
// the exit code as the local command's error does.
func (p *problemError) Is(target error) bool {
	switch target {
	case accounts.ErrNotFound:
		return p.Status == http.StatusNotFound || p.kind() == "unknown-channel"
	case accounts.ErrConflict:
		return p.Status == http.StatusConflict || p.Status == http.StatusPreconditionFailed
	case accounts.ErrInvalid:
		switch p.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusPreconditionRequired:
			return true
		case http.StatusUnprocessableEntity:
			return p.kind() != "unknown-channel"
		}
	}
	return false
}

// isUnknownChannel reports whether err refuses a channel the catalogue
// lacks, locally or from the admin API.
func isUnknownChannel(err error) bool {
	var unknown *accounts.UnknownChannelError
	var p *problemError
	return errors.As(err, &unknown) || (errors.As(err, &p) && p.kind() == "unknown-channel")
}

// call sends method path (under the API's prefix) with in as its JSON
// body (none when nil) and decodes a 2xx answer into out (when not nil).
// It returns the answer's ETag.
func (s *remoteStore) call(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) (string, error) {
	// path is escaped already, segment by segment (seg).
	u := *s.base
	u.RawPath = s.base.EscapedPath() + path
	unescaped, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return "", err
	}
	u.Path = unescaped
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return "", err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error names the URL and the cause, never the header.
		return "", fmt.Errorf("the admin API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteBody+1))
	if err != nil {
		return "", fmt.Errorf("the admin API: %s %s: reading the answer: %w", method, u.Redacted(), err)
	}
	if len(data) > maxRemoteBody {
		return "", fmt.Errorf("the admin API: %s %s: answer over %d bytes", method, u.Redacted(), maxRemoteBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		p := &problemError{}
		if err := json.Unmarshal(data, p); err != nil || p.Status == 0 {
			return "", fmt.Errorf("the admin API: %s %s: %s (not an admin API answer: is --server the token service's admin.listen?)", method, u.Redacted(), resp.Status)
		}
		return "", p
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return "", fmt.Errorf("the admin API: %s %s: %w", method, u.Redacted(), err)
		}
	}
	return resp.Header.Get("ETag"), nil
}

// seg escapes one path segment.
func seg(s string) string { return "/" + url.PathEscape(s) }

// page is a listing's answer.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// all reads every page of the listing at path.
func all[T any](ctx context.Context, s *remoteStore, path string) ([]T, error) {
	var out []T
	q := url.Values{"limit": {strconv.Itoa(s.pageSize)}}
	for range maxRemotePages {
		var p page[T]
		if _, err := s.call(ctx, http.MethodGet, path, q, nil, nil, &p); err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out, nil
		}
		if p.NextCursor == q.Get("cursor") {
			return nil, fmt.Errorf("the admin API: %s: the same page again", path)
		}
		q.Set("cursor", p.NextCursor)
	}
	return nil, fmt.Errorf("the admin API: %s: over %d pages", path, maxRemotePages)
}

// expiryJSON is an expiry as the admin API takes it: null for never.
func expiryJSON(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func (s *remoteStore) Add(ctx context.Context, _, email string, channels []string, expires time.Time, create bool) (accounts.Account, string, error) {
	// Checked here as the account store checks them, so that a bad
	// argument reads the same both ways.
	if _, err := accounts.NormalizeEmail(email); err != nil {
		return accounts.Account{}, "", err
	}
	if _, err := accounts.NormalizeChannels(channels); err != nil {
		return accounts.Account{}, "", err
	}
	in := struct {
		Email          string   `json:"email"`
		Channels       []string `json:"channels"`
		Expires        *string  `json:"expires,omitempty"`
		CreateChannels bool     `json:"create_channels,omitempty"`
	}{email, channels, expiryJSON(expires), create}
	var out struct {
		Account accounts.Account `json:"account"`
		Token   string           `json:"token"`
	}
	_, err := s.call(ctx, http.MethodPost, "/accounts", nil, nil, in, &out)
	return out.Account, out.Token, err
}

func (s *remoteStore) List(ctx context.Context) ([]accounts.Account, error) {
	return all[accounts.Account](ctx, s, "/accounts")
}

// show returns the account with its ETag.
func (s *remoteStore) show(ctx context.Context, email string) (accounts.Account, string, error) {
	var a accounts.Account
	tag, err := s.call(ctx, http.MethodGet, "/accounts"+seg(email), nil, nil, nil, &a)
	return a, tag, err
}

func (s *remoteStore) Show(ctx context.Context, email string) (accounts.Account, error) {
	a, _, err := s.show(ctx, email)
	return a, err
}

// AccountUsage is the account's first and last pull and last check, as
// the account's GET shows them.
func (s *remoteStore) AccountUsage(ctx context.Context, email string) (accounts.AccountUsage, error) {
	var v struct {
		Usage accounts.AccountUsage `json:"usage"`
	}
	_, err := s.call(ctx, http.MethodGet, "/accounts"+seg(email), nil, nil, nil, &v)
	return v.Usage, err
}

// Grant puts a grant per channel the account lacks (a grant held is left
// alone, as locally: a PUT would reset its expiry). Channels the catalogue
// lacks are made first with create, else refused before any grant.
func (s *remoteStore) Grant(ctx context.Context, _, email string, channels []string, create bool) error {
	channels, err := accounts.NormalizeChannels(channels)
	if err != nil {
		return err
	}
	a, _, err := s.show(ctx, email)
	if err != nil {
		return err
	}
	catalogue, err := s.Channels(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, ch := range catalogue {
		known[ch.Name] = true
	}
	var todo, unknown []string
	for _, ch := range channels {
		switch {
		case slices.Contains(a.Channels, ch):
		case known[ch]:
			todo = append(todo, ch)
		default:
			unknown = append(unknown, ch)
		}
	}
	if create {
		for _, ch := range unknown {
			if _, err := s.AddChannel(ctx, "", ch, ""); err != nil && !errors.Is(err, accounts.ErrConflict) {
				return err
			}
		}
		todo = append(unknown, todo...)
	} else if len(unknown) > 0 {
		return s.refuseUnknown(ctx, a.Email, unknown)
	}
	for _, ch := range todo {
		if _, err := s.call(ctx, http.MethodPut, "/accounts"+seg(a.Email)+"/channels"+seg(ch), nil, nil, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// refuseUnknown asks the API to grant each channel the catalogue lacks,
// which it refuses, changing nothing, and returns the refusals as one, as
// the account store words a refusal of several: each channel with its
// suggestion, then the known ones once.
func (s *remoteStore) refuseUnknown(ctx context.Context, email string, unknown []string) error {
	var merged *problemError
	var heads []string
	tail := ""
	for _, ch := range unknown {
		_, err := s.call(ctx, http.MethodPut, "/accounts"+seg(email)+"/channels"+seg(ch), nil, nil, nil, nil)
		var p *problemError
		if err == nil || !errors.As(err, &p) || p.kind() != "unknown-channel" || len(p.Errors) == 0 {
			if err == nil {
				// Made since the catalogue was read: granted, as asked.
				continue
			}
			return err
		}
		msg := p.Errors[0].Detail
		head := msg
		if i := strings.LastIndex(msg, " ("); i >= 0 {
			head, tail = msg[:i], msg[i:]
		}
		heads = append(heads, head)
		if merged == nil {
			merged = p
		}
	}
	if merged == nil {
		return nil
	}
	merged.Errors[0].Detail = strings.Join(heads, "; ") + tail
	return merged
}

func (s *remoteStore) Ungrant(ctx context.Context, _, email string, channels []string) error {
	channels, err := accounts.NormalizeChannels(channels)
	if err != nil {
		return err
	}
	a, _, err := s.show(ctx, email)
	if err != nil {
		return err
	}
	for _, ch := range channels {
		if !slices.Contains(a.Channels, ch) {
			return &accounts.Error{Kind: accounts.ErrNotFound, Msg: fmt.Sprintf("%s does not hold channel %s (it holds: %s)", a.Email, ch, strings.Join(a.Channels, ", "))}
		}
	}
	for _, ch := range channels {
		if _, err := s.call(ctx, http.MethodDelete, "/accounts"+seg(a.Email)+"/channels"+seg(ch), nil, nil, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// patch changes the account as last read: the If-Match of its ETag makes
// a change someone made since a conflict rather than overwritten.
func (s *remoteStore) patch(ctx context.Context, email string, check func(accounts.Account) error, change any) error {
	a, tag, err := s.show(ctx, email)
	if err != nil {
		return err
	}
	if tag == "" {
		return fmt.Errorf("the admin API: GET of %s answered without an ETag", a.Email)
	}
	if err := check(a); err != nil {
		return err
	}
	method := http.MethodPatch
	if change == nil {
		method = http.MethodDelete
	}
	_, err = s.call(ctx, method, "/accounts"+seg(a.Email), nil, http.Header{"If-Match": {tag}}, change, nil)
	return err
}

func (s *remoteStore) SetExpiry(ctx context.Context, _, email string, expires time.Time) error {
	if !expires.IsZero() && !expires.After(s.now()) {
		return &accounts.Error{Kind: accounts.ErrInvalid, Msg: fmt.Sprintf("expiry %s is in the past", expires.UTC().Format(time.RFC3339))}
	}
	in := struct {
		Expires *string `json:"expires"`
	}{expiryJSON(expires)}
	return s.patch(ctx, email, func(accounts.Account) error { return nil }, in)
}

func (s *remoteStore) SetState(ctx context.Context, _, email, state string) error {
	if state != accounts.StateActive && state != accounts.StateDisabled {
		return &accounts.Error{Kind: accounts.ErrInvalid, Msg: fmt.Sprintf("state %q is not %s or %s", state, accounts.StateActive, accounts.StateDisabled)}
	}
	in := struct {
		Disabled bool `json:"disabled"`
	}{state == accounts.StateDisabled}
	return s.patch(ctx, email, func(a accounts.Account) error {
		if a.State == state {
			return &accounts.Error{Kind: accounts.ErrConflict, Msg: fmt.Sprintf("%s is %s already", a.Email, state)}
		}
		return nil
	}, in)
}

func (s *remoteStore) SetSelfServiceTokens(ctx context.Context, _, email string, on bool) error {
	in := struct {
		SelfServiceTokens bool `json:"self_service_tokens"`
	}{on}
	return s.patch(ctx, email, func(accounts.Account) error { return nil }, in)
}

// SignInLink asks the server, which makes the URL under its
// console.public_url and decides the lifetime.
func (s *remoteStore) SignInLink(ctx context.Context, _, email, _ string, _ time.Duration) (string, time.Time, error) {
	var out struct {
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
	}
	_, err := s.call(ctx, http.MethodPost, "/accounts"+seg(email)+"/sign-in-links", nil, nil, nil, &out)
	return out.URL, out.Expires, err
}

func (s *remoteStore) Delete(ctx context.Context, _, email string) error {
	return s.patch(ctx, email, func(accounts.Account) error { return nil }, nil)
}

// createdToken is the admin API's answer to a token's creation or
// rotation.
type createdToken struct {
	Revoked *accounts.Token     `json:"revoked"`
	Created accounts.NamedToken `json:"created"`
	Token   string              `json:"token"`
}

func (s *remoteStore) AddToken(ctx context.Context, _, email, name string) (accounts.Token, string, error) {
	if name == "" {
		name = defaultRemoteName
	}
	var out createdToken
	_, err := s.call(ctx, http.MethodPost, "/accounts"+seg(email)+"/tokens", nil, nil, struct {
		Name string `json:"name"`
	}{name}, &out)
	return out.Created.Token, out.Token, err
}

// pickToken resolves ref (id, or prefix with or without TokenPrefix) among
// the account's active tokens, as the account store does: the API takes
// only ids.
func (s *remoteStore) pickToken(ctx context.Context, email, ref string) (string, accounts.Token, error) {
	norm, err := accounts.NormalizeEmail(email)
	if err != nil {
		return "", accounts.Token{}, err
	}
	var p page[accounts.NamedToken]
	if _, err := s.call(ctx, http.MethodGet, "/accounts"+seg(norm)+"/tokens", nil, nil, nil, &p); err != nil {
		return "", accounts.Token{}, err
	}
	var active []accounts.Token
	for _, tok := range p.Items {
		if tok.Revoked.IsZero() {
			active = append(active, tok.Token)
		}
	}
	if ref == "" {
		switch len(active) {
		case 0:
			return "", accounts.Token{}, &accounts.Error{Kind: accounts.ErrNotFound, Msg: fmt.Sprintf("%s has no active token", norm)}
		case 1:
			return norm, active[0], nil
		default:
			return "", accounts.Token{}, &accounts.Error{Kind: accounts.ErrInvalid, Msg: fmt.Sprintf("%s has %d active tokens: name one by id or prefix (see `tokenserver accounts show %s`)", norm, len(active), norm)}
		}
	}
	id, numErr := strconv.ParseInt(ref, 10, 64)
	for _, tok := range active {
		if (numErr == nil && tok.ID == id) || (tok.Prefix != "" && (ref == tok.Prefix || accounts.TokenPrefix+ref == tok.Prefix)) {
			return norm, tok, nil
		}
	}
	return "", accounts.Token{}, &accounts.Error{Kind: accounts.ErrNotFound, Msg: fmt.Sprintf("%s has no active token %s", norm, ref)}
}

func (s *remoteStore) RevokeToken(ctx context.Context, _, email, ref string) (accounts.Token, error) {
	norm, tok, err := s.pickToken(ctx, email, ref)
	if err != nil {
		return accounts.Token{}, err
	}
	var out accounts.Token
	_, err = s.call(ctx, http.MethodDelete, "/accounts"+seg(norm)+"/tokens"+seg(strconv.FormatInt(tok.ID, 10)), nil, nil, nil, &out)
	return out, err
}

func (s *remoteStore) RotateToken(ctx context.Context, _, email, ref string) (old, created accounts.Token, token string, err error) {
	norm, tok, err := s.pickToken(ctx, email, ref)
	if err != nil {
		return accounts.Token{}, accounts.Token{}, "", err
	}
	var out createdToken
	if _, err := s.call(ctx, http.MethodPost, "/accounts"+seg(norm)+"/tokens"+seg(strconv.FormatInt(tok.ID, 10))+"/rotate", nil, nil, nil, &out); err != nil {
		return accounts.Token{}, accounts.Token{}, "", err
	}
	if out.Revoked != nil {
		old = *out.Revoked
	}
	return old, out.Created.Token, out.Token, nil
}

// Audit reads the whole audit and keeps the rows of email: the API has no
// filter by account.
func (s *remoteStore) Audit(ctx context.Context, email string) ([]accounts.AuditEntry, error) {
	norm := ""
	if email != "" {
		var err error
		if norm, err = accounts.NormalizeEmail(email); err != nil {
			return nil, err
		}
	}
	rows, err := all[accounts.AuditEntry](ctx, s, "/audit")
	if err != nil || norm == "" {
		return rows, err
	}
	var out []accounts.AuditEntry
	for _, e := range rows {
		if e.Account == norm {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *remoteStore) Channels(ctx context.Context) ([]accounts.Channel, error) {
	var p page[accounts.Channel]
	_, err := s.call(ctx, http.MethodGet, "/channels", nil, nil, nil, &p)
	return p.Items, err
}

func (s *remoteStore) AddChannel(ctx context.Context, _, name, description string) (accounts.Channel, error) {
	if _, err := accounts.NormalizeChannels([]string{name}); err != nil {
		return accounts.Channel{}, err
	}
	if _, err := accounts.NormalizeDescription(description); err != nil {
		return accounts.Channel{}, err
	}
	var ch accounts.Channel
	_, err := s.call(ctx, http.MethodPost, "/channels", nil, nil, struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
	}{name, description}, &ch)
	return ch, err
}

func (s *remoteStore) RemoveChannel(ctx context.Context, _, name string, force bool) ([]string, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var out struct {
		TakenFrom []string `json:"taken_from"`
	}
	_, err := s.call(ctx, http.MethodDelete, "/channels"+seg(name), q, nil, nil, &out)
	if len(out.TakenFrom) == 0 {
		out.TakenFrom = nil
	}
	return out.TakenFrom, err
}
