package console

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// The vendor's pages (signed in with an admin key, or OpenID Connect).
// A vendor's changes go through internal/accounts with the session's
// subject as the actor, as the admin API's go with the admin key's name:
// the console is a client of the same operations, with no SQL of its own.
// A session of the read scope sees every page and changes nothing.

func init() {
	// The account page's link, escaped, for the templates.
	funcs["accountPath"] = accountPath
}

// vendorState is what the vendor's side keeps besides the Console's
// fields: the single sign-on, when configured.
type vendorState struct {
	oidc *oidcSignIn
}

// initVendor sets up the vendor's side; New calls it.
func (c *Console) initVendor(o Options) error {
	if !c.cfg.OIDC.enabled() {
		return nil
	}
	s, err := newOIDCSignIn(c.cfg.OIDC, c.http)
	if err != nil {
		return err
	}
	c.vendor.oidc = s
	return nil
}

// OIDCEnabled says whether the sign-in page offers single sign-on.
func (c *Console) OIDCEnabled() bool { return c.vendor.oidc != nil }

func (c *Console) vendorRoutes(mux *http.ServeMux) {
	mux.Handle("GET "+Prefix+"sign-in/oidc", c.page(c.oidcStart))
	mux.Handle("GET "+Prefix+"sign-in/oidc/callback", c.page(c.oidcCallback))

	vendor := func(h sessionFunc) http.Handler { return c.signedIn(accounts.SessionVendor, h) }
	write := func(h sessionFunc) http.Handler { return c.signedIn(accounts.SessionVendor, vendorWrite(h)) }
	mux.Handle("GET "+Prefix+"vendor/{$}", vendor(c.vendorHome))
	mux.Handle("GET "+Prefix+"vendor/accounts", vendor(c.vendorAccounts))
	mux.Handle("POST "+Prefix+"vendor/accounts", write(c.vendorCreateAccount))
	mux.Handle("GET "+Prefix+"vendor/accounts/{email}", vendor(c.vendorAccount))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/grant", write(c.vendorGrant))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/ungrant", write(c.vendorUngrant))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/tokens", write(c.vendorIssueToken))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/tokens/{id}/revoke", write(c.vendorRevokeToken))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/tokens/{id}/rotate", write(c.vendorRotateToken))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/state", write(c.vendorSetState))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/self-service", write(c.vendorSetSelfService))
	mux.Handle("POST "+Prefix+"vendor/accounts/{email}/link", write(c.vendorSignInLink))
	mux.Handle("GET "+Prefix+"vendor/channels", vendor(c.vendorChannels))
}

// errReadOnly refuses a change to a session of the read scope.
var errReadOnly = &pageError{Status: http.StatusForbidden, Title: "Read-only sign-in",
	Message: "You are signed in with read access only: you can see the accounts but not change them."}

// vendorWrite admits only sessions of the write scope.
func vendorWrite(h sessionFunc) sessionFunc {
	return func(w http.ResponseWriter, r *http.Request, q *request) error {
		if q.s.Scope != accounts.ScopeWrite {
			return errReadOnly
		}
		return h(w, r, q)
	}
}

// storeRefusal turns a channel the catalogue lacks into a page the vendor
// can act on (the store's message names the known channels and the one
// most likely meant); other errors go to fail as they are.
func storeRefusal(err error) error {
	if uc, ok := errors.AsType[*accounts.UnknownChannelError](err); ok {
		return &pageError{Status: http.StatusBadRequest, Title: "Not done", Message: uc.Error()}
	}
	return err
}

// accountPath is the account page's path; the address is escaped, so
// that an address with any character stays one path segment.
func accountPath(email string) string {
	return Prefix + "vendor/accounts/" + url.PathEscape(email)
}

// dashboardDays is how far back the dashboard looks; expiringDays how far
// ahead it warns of grants and accounts ending.
const (
	dashboardDays = 30
	expiringDays  = 30
	topN          = 5
)

// ranked is one row of a top list.
type ranked struct {
	Name  string
	Count int64
}

// expiring is an account or grant ending within expiringDays.
type expiring struct {
	Email   string
	Channel string // "": the account itself
	Expires time.Time
}

// dashboardData is the vendor's dashboard's.
type dashboardData struct {
	Chart        Chart
	Totals       map[string]int64
	TopAccounts  []ranked
	TopImages    []ranked
	RefusedBy    []ranked
	Expiring     []expiring
	AccountCount int
}

// vendorHome is the dashboard: pulls and checks per day, top customers
// and images, refusals by channel, what expires soon.
func (c *Console) vendorHome(w http.ResponseWriter, r *http.Request, q *request) error {
	ctx := r.Context()
	now := c.now().UTC()
	since := now.AddDate(0, 0, -(dashboardDays - 1))
	counts, err := c.db.DailyUsage(ctx, "", since)
	if err != nil {
		return err
	}
	d := dashboardData{Chart: DailyChart("Pulls and checks per day, last 30 days", since, dashboardDays, counts), Totals: map[string]int64{}}
	for _, cnt := range counts {
		d.Totals[cnt.Outcome] += cnt.Count
	}
	// The top lists sum the daily counts the chart draws, not the raw
	// events: a row per account and repository rather than per pull (a
	// busy month's events took the page seconds to read, see
	// bench/notes/2026-12-07-console-pages.md), and every day of the 30
	// counts even when usage.retention has pruned its events.
	totals, err := c.db.UsageTotals(ctx, since)
	if err != nil {
		return err
	}
	byAccount, byImage, refused := map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, u := range totals {
		if u.Outcome == accounts.UsageDenied {
			refused[u.Channel] += u.Count
			continue
		}
		byAccount[u.Account] += u.Count
		byImage[u.Repository] += u.Count
	}
	d.TopAccounts, d.TopImages, d.RefusedBy = top(byAccount, topN), top(byImage, topN), top(refused, 0)

	list, err := c.db.List(ctx)
	if err != nil {
		return err
	}
	d.AccountCount = len(list)
	horizon := now.AddDate(0, 0, expiringDays)
	soon := func(t time.Time) bool { return !t.IsZero() && t.After(now) && !t.After(horizon) }
	for _, a := range list {
		if a.State == accounts.StateActive && soon(a.Expires) {
			d.Expiring = append(d.Expiring, expiring{Email: a.Email, Expires: a.Expires})
		}
	}
	// The grants in one query, not one per account.
	grants, err := c.db.ExpiringGrants(ctx, now, horizon)
	if err != nil {
		return err
	}
	for _, g := range grants {
		d.Expiring = append(d.Expiring, expiring{Email: g.Email, Channel: g.Channel, Expires: g.Expires})
	}
	slices.SortStableFunc(d.Expiring, func(a, b expiring) int { return a.Expires.Compare(b.Expires) })
	v := c.sessionView(r, q, "Dashboard", "vendor")
	v.Data = d
	return c.render(w, http.StatusOK, "vendor_home", v)
}

// top is the n largest counts (all when n is 0), largest first.
func top(m map[string]int64, n int) []ranked {
	out := make([]ranked, 0, len(m))
	for k, v := range m {
		out = append(out, ranked{k, v})
	}
	slices.SortFunc(out, func(a, b ranked) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// accountsPage is how many accounts the list shows at once.
const accountsPage = 50

// accountsData is the account list's.
type accountsData struct {
	Query, State, Channel string
	Accounts              []accounts.Account
	Channels              []accounts.Channel
	Next                  string // the query of the next page; "" on the last
	CanWrite              bool
}

// vendorAccounts lists the accounts: search by address, filter by state
// and channel, a page at a time.
func (c *Console) vendorAccounts(w http.ResponseWriter, r *http.Request, q *request) error {
	ctx := r.Context()
	qs := r.URL.Query()
	d := accountsData{Query: strings.TrimSpace(qs.Get("q")), State: qs.Get("state"), Channel: qs.Get("channel"), CanWrite: q.s.Scope == accounts.ScopeWrite}
	if d.State != "" && d.State != accounts.StateActive && d.State != accounts.StateDisabled {
		d.State = ""
	}
	var err error
	if d.Channels, err = c.db.Channels(ctx); err != nil {
		return err
	}
	// The filters apply to the pages AccountPage reads, until a page is
	// full or the accounts end.
	after := qs.Get("after")
	for len(d.Accounts) < accountsPage {
		page, more, err := c.db.AccountPage(ctx, d.Query, after, accountsPage)
		if err != nil {
			return err
		}
		for _, a := range page {
			if (d.State == "" || a.State == d.State) && (d.Channel == "" || slices.Contains(a.Channels, d.Channel)) {
				d.Accounts = append(d.Accounts, a)
			}
			after = a.Email
			if len(d.Accounts) == accountsPage {
				break
			}
		}
		if !more {
			after = ""
			break
		}
	}
	if after != "" && len(d.Accounts) == accountsPage {
		next := url.Values{"after": {after}}
		for k, v := range map[string]string{"q": d.Query, "state": d.State, "channel": d.Channel} {
			if v != "" {
				next.Set(k, v)
			}
		}
		d.Next = next.Encode()
	}
	v := c.sessionView(r, q, "Accounts", "accounts")
	v.Data = d
	return c.render(w, http.StatusOK, "vendor_accounts", v)
}

// parseDay reads a date field (YYYY-MM-DD, as <input type=date> sends
// it): the grant or account ends at the start of that day (UTC), the day
// the pages then show as its end. "" is no end.
func parseDay(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, &pageError{Status: http.StatusBadRequest, Title: "Not done", Message: "The date " + strconv.Quote(truncate(s, 40)) + " is not a date (YYYY-MM-DD)."}
	}
	return d, nil
}

// vendorCreateAccount adds an account with the channels ticked and shows
// its first API token, once.
func (c *Console) vendorCreateAccount(w http.ResponseWriter, r *http.Request, q *request) error {
	expires, err := parseDay(r.PostForm.Get("expires"))
	if err != nil {
		return err
	}
	acct, token, err := c.db.Add(r.Context(), q.s.Subject, strings.TrimSpace(r.PostForm.Get("email")), r.PostForm["channel"], expires)
	if err != nil {
		return storeRefusal(err)
	}
	return c.renderAccount(w, r, q, acct.Email, secretShown{Title: "The account's API token", Value: token,
		Note: "Give it to the customer with the e-mail address: it is the password of docker login and of this console. It is shown this once."})
}

// secretShown is a token or link shown once, on the answer to the POST
// that made it: never in a URL, nor in a page that can be reloaded.
type secretShown struct {
	Title, Value, Note string
}

// accountData is the account page's.
type accountData struct {
	Account     accounts.Account
	Grants      []accounts.Grant
	Tokens      []accounts.NamedToken
	Usage       accounts.AccountUsage
	Chart       Chart
	Totals      map[string]int64
	Audit       []accounts.AuditEntry
	AuditMore   int
	Ungranted   []accounts.Channel
	SelfService bool
	Path        string
	CanWrite    bool
	Secret      secretShown
	Today       string
}

// auditShown bounds the audit rows on the account page (newest first).
const auditShown = 50

func (c *Console) vendorAccount(w http.ResponseWriter, r *http.Request, q *request) error {
	return c.renderAccount(w, r, q, r.PathValue("email"), secretShown{})
}

func (c *Console) renderAccount(w http.ResponseWriter, r *http.Request, q *request, email string, secret secretShown) error {
	ctx := r.Context()
	acct, grants, err := c.db.ShowGrants(ctx, email)
	if err != nil {
		return err
	}
	d := accountData{Account: acct, Grants: grants, Path: accountPath(acct.Email), CanWrite: q.s.Scope == accounts.ScopeWrite, Secret: secret, Totals: map[string]int64{}, Today: c.now().UTC().Format(time.DateOnly)}
	if d.Tokens, err = c.db.NamedTokens(ctx, acct.Email); err != nil {
		return err
	}
	if d.Usage, err = c.db.AccountUsage(ctx, acct.Email); err != nil {
		return err
	}
	since := c.now().UTC().AddDate(0, 0, -(usageDays - 1))
	counts, err := c.db.DailyUsage(ctx, acct.Email, since)
	if err != nil {
		return err
	}
	d.Chart = DailyChart("Pulls and checks per day of "+acct.Email+", last 30 days", since, usageDays, counts)
	for _, cnt := range counts {
		d.Totals[cnt.Outcome] += cnt.Count
	}
	audit, err := c.db.Audit(ctx, acct.Email)
	if err != nil {
		return err
	}
	slices.Reverse(audit)
	if len(audit) > auditShown {
		d.AuditMore = len(audit) - auditShown
		audit = audit[:auditShown]
	}
	d.Audit = audit
	catalogue, err := c.db.Channels(ctx)
	if err != nil {
		return err
	}
	for _, ch := range catalogue {
		if !slices.ContainsFunc(grants, func(g accounts.Grant) bool { return g.Channel == ch.Name }) {
			d.Ungranted = append(d.Ungranted, ch)
		}
	}
	if d.SelfService, err = c.db.SelfServiceTokens(ctx, acct.Email); err != nil {
		return err
	}
	v := c.sessionView(r, q, acct.Email, "accounts")
	v.Title = "Account " + acct.Email
	v.Data = d
	return c.render(w, http.StatusOK, "vendor_account", v)
}

// backToAccount answers a change with the account page (Post/Redirect/Get).
func backToAccount(w http.ResponseWriter, r *http.Request, email string) error {
	http.Redirect(w, r, accountPath(email), http.StatusSeeOther)
	return nil
}

func (c *Console) vendorGrant(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	expires, err := parseDay(r.PostForm.Get("expires"))
	if err != nil {
		return err
	}
	if _, _, err := c.db.SetGrant(r.Context(), q.s.Subject, email, strings.TrimSpace(r.PostForm.Get("channel")), expires); err != nil {
		return storeRefusal(err)
	}
	return backToAccount(w, r, email)
}

func (c *Console) vendorUngrant(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	if err := c.db.Ungrant(r.Context(), q.s.Subject, email, []string{r.PostForm.Get("channel")}); err != nil {
		return err
	}
	return backToAccount(w, r, email)
}

func (c *Console) vendorIssueToken(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	name := strings.TrimSpace(r.PostForm.Get("name"))
	var secret string
	if name == "" {
		_, tok, err := c.db.AddToken(r.Context(), q.s.Subject, email)
		if err != nil {
			return err
		}
		secret = tok
	} else {
		_, tok, err := c.db.AddNamedToken(r.Context(), q.s.Subject, email, name)
		if err != nil {
			return err
		}
		secret = tok
	}
	return c.renderAccount(w, r, q, email, secretShown{Title: "The new API token", Value: secret,
		Note: "Give it to the customer: with the account's e-mail address it is the password of docker login. It is shown this once."})
}

// tokenRef is the token id of the path, looked up by the store within the
// account of the path only.
func tokenRef(r *http.Request) (string, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return "", notFound()
	}
	return strconv.FormatInt(id, 10), nil
}

func (c *Console) vendorRevokeToken(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	ref, err := tokenRef(r)
	if err != nil {
		return err
	}
	if _, err := c.db.RevokeToken(r.Context(), q.s.Subject, email, ref); err != nil {
		return err
	}
	return backToAccount(w, r, email)
}

func (c *Console) vendorRotateToken(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	ref, err := tokenRef(r)
	if err != nil {
		return err
	}
	old, _, secret, err := c.db.RotateNamedToken(r.Context(), q.s.Subject, email, ref)
	if err != nil {
		return err
	}
	return c.renderAccount(w, r, q, email, secretShown{Title: "The token replacing " + old.Prefix, Value: secret,
		Note: "The old token no longer works. Give this one to the customer; it is shown this once."})
}

func (c *Console) vendorSetState(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	state := r.PostForm.Get("state")
	if state != accounts.StateActive && state != accounts.StateDisabled {
		return &pageError{Status: http.StatusBadRequest, Title: "Not done", Message: "An account is active or disabled."}
	}
	if err := c.db.SetState(r.Context(), q.s.Subject, email, state); err != nil {
		return err
	}
	return backToAccount(w, r, email)
}

func (c *Console) vendorSetSelfService(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	if err := c.db.SetSelfServiceTokens(r.Context(), q.s.Subject, email, r.PostForm.Get("on") == "1"); err != nil {
		return err
	}
	return backToAccount(w, r, email)
}

// vendorSignInLink makes a one-time sign-in link for the customer, shown
// once.
func (c *Console) vendorSignInLink(w http.ResponseWriter, r *http.Request, q *request) error {
	email := r.PathValue("email")
	link, expires, err := c.NewSignInLink(r, q.s.Subject, email)
	if err != nil {
		return err
	}
	return c.renderAccount(w, r, q, email, secretShown{Title: "A sign-in link for the customer", Value: link,
		Note: "It signs the customer in to this console once, until " + expires.UTC().Format("2006-01-02 15:04 UTC") + ". Send it to them; it is shown this once."})
}

// channelsData is the channel catalogue's.
type channelsData struct {
	Channels []accounts.Channel
}

func (c *Console) vendorChannels(w http.ResponseWriter, r *http.Request, q *request) error {
	chs, err := c.db.Channels(r.Context())
	if err != nil {
		return err
	}
	v := c.sessionView(r, q, "Channels", "channels")
	v.Data = channelsData{Channels: chs}
	return c.render(w, http.StatusOK, "vendor_channels", v)
}
