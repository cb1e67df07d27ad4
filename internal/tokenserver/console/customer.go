package console

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
)

// The customer's pages. Every one reads and changes only the account of
// the session (q.s.Subject): no page takes an account from the request, and
// a token id of the request is looked up within that account, so another
// customer's ids find nothing.

// usageDays is how far back the customer's usage page looks.
const usageDays = 30

func (c *Console) customerRoutes(mux *http.ServeMux) {
	cust := func(h sessionFunc) http.Handler { return c.signedIn(accounts.SessionCustomer, h) }
	mux.Handle("GET "+Prefix+"customer/{$}", cust(c.customerHome))
	mux.Handle("GET "+Prefix+"customer/tokens", cust(c.customerTokens))
	mux.Handle("POST "+Prefix+"customer/tokens", cust(c.customerCreateToken))
	mux.Handle("POST "+Prefix+"customer/tokens/{id}/revoke", cust(c.customerRevokeToken))
	mux.Handle("GET "+Prefix+"customer/usage", cust(c.customerUsage))
}

// customerActor is who the audit names for a change a customer makes.
func customerActor(email string) string { return "customer:" + email }

// homeData is the customer's home page's.
type homeData struct {
	Email    string
	Grants   []accounts.Grant
	Expires  time.Time
	Registry registryView
	// RegistryError says why the repositories could not be listed.
	RegistryError string
	// Example is a repository:tag for the commands.
	Example      string
	ExampleChart string
}

// customerHome: the channels the licence holds, the repositories and tags
// the customer may pull, and the commands to do so.
func (c *Console) customerHome(w http.ResponseWriter, r *http.Request, q *request) error {
	email := q.s.Subject
	acct, grants, err := c.db.ShowGrants(r.Context(), email)
	if err != nil {
		return err
	}
	d := homeData{Email: acct.Email, Grants: grants, Expires: acct.Expires}
	lic, err := c.db.LicenseOf(r.Context(), email)
	if errors.Is(err, license.ErrBadCredentials) {
		return errSignIn // disabled or expired since the session began
	}
	if err != nil {
		return err
	}
	d.Registry, err = c.readRegistry(r.Context(), lic)
	if err != nil {
		c.log.Warn("console: reading the gateway's view", slog.String("account", email), slog.Any("error", err))
		d.RegistryError = "The list of repositories is not available right now (the registry did not answer). The commands below work all the same."
	}
	d.Example, d.ExampleChart = "CHANNEL/IMAGE:TAG", "CHANNEL/CHART"
	// The example image: the first with a tag that is not a chart.
	for _, repo := range slices.Backward(d.Registry.Repositories) {
		if len(repo.Tags) > 0 && (!strings.Contains(repo.Name, "chart") || d.Example == "CHANNEL/IMAGE:TAG") {
			d.Example = repo.Name + ":" + repo.Tags[0]
		}
	}
	// The example chart: a repository named like one, else a placeholder
	// (the registry does not say which repositories hold charts).
	for _, repo := range d.Registry.Repositories {
		if strings.Contains(repo.Name, "chart") {
			d.ExampleChart = repo.Name
			break
		}
	}
	v := c.sessionView(r, q, "What you can pull", "home")
	v.Data = d
	return c.render(w, http.StatusOK, "customer_home", v)
}

// tokensData is the customer's token page's.
type tokensData struct {
	Email       string
	SelfService bool
	Tokens      []accounts.NamedToken
	// New is a token just created: shown this once.
	New     string
	NewName string
}

func (c *Console) tokensData(r *http.Request, email string) (tokensData, error) {
	on, err := c.db.SelfServiceTokens(r.Context(), email)
	if err != nil {
		return tokensData{}, err
	}
	toks, err := c.db.NamedTokens(r.Context(), email)
	if err != nil {
		return tokensData{}, err
	}
	return tokensData{Email: email, SelfService: on, Tokens: toks}, nil
}

func (c *Console) customerTokens(w http.ResponseWriter, r *http.Request, q *request) error {
	d, err := c.tokensData(r, q.s.Subject)
	if err != nil {
		return err
	}
	v := c.sessionView(r, q, "Your API tokens", "tokens")
	v.Data = d
	return c.render(w, http.StatusOK, "customer_tokens", v)
}

// errNoSelfService: the vendor has not let this account manage its tokens.
var errNoSelfService = &pageError{Status: http.StatusForbidden, Title: "Not allowed",
	Message: "Your vendor manages the API tokens of your account: ask them for a new token or to revoke one."}

func (c *Console) customerCreateToken(w http.ResponseWriter, r *http.Request, q *request) error {
	email := q.s.Subject
	on, err := c.db.SelfServiceTokens(r.Context(), email)
	if err != nil {
		return err
	}
	if !on {
		return errNoSelfService
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	tok, secret, err := c.db.AddNamedToken(r.Context(), customerActor(email), email, name)
	if err != nil {
		return err
	}
	d, err := c.tokensData(r, email)
	if err != nil {
		return err
	}
	d.New, d.NewName = secret, tok.Name
	v := c.sessionView(r, q, "Your API tokens", "tokens")
	v.Data = d
	// Shown once, on the answer to the POST: no redirect, so that the
	// token is never in a URL or a page that can be reloaded later.
	return c.render(w, http.StatusOK, "customer_tokens", v)
}

func (c *Console) customerRevokeToken(w http.ResponseWriter, r *http.Request, q *request) error {
	email := q.s.Subject
	on, err := c.db.SelfServiceTokens(r.Context(), email)
	if err != nil {
		return err
	}
	if !on {
		return errNoSelfService
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return notFound()
	}
	// RevokeToken looks the id up among this account's tokens only.
	if _, err := c.db.RevokeToken(r.Context(), customerActor(email), email, strconv.FormatInt(id, 10)); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"customer/tokens", http.StatusSeeOther)
	return nil
}

// usageData is the customer's usage page's.
type usageData struct {
	Chart  Chart
	Totals map[string]int64
	Usage  accounts.AccountUsage
}

func (c *Console) customerUsage(w http.ResponseWriter, r *http.Request, q *request) error {
	email := q.s.Subject
	since := c.now().UTC().AddDate(0, 0, -(usageDays - 1))
	counts, err := c.db.DailyUsage(r.Context(), email, since)
	if err != nil {
		return err
	}
	u, err := c.db.AccountUsage(r.Context(), email)
	if err != nil {
		return err
	}
	d := usageData{Chart: DailyChart("Pulls and checks per day, last 30 days", since, usageDays, counts), Totals: map[string]int64{}, Usage: u}
	for _, cnt := range counts {
		d.Totals[cnt.Outcome] += cnt.Count
	}
	v := c.sessionView(r, q, "Your pulls", "usage")
	v.Data = d
	return c.render(w, http.StatusOK, "customer_usage", v)
}
