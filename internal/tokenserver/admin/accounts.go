package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// createAccount is the body of POST /accounts.
type createAccount struct {
	Email    *string  `json:"email"`
	Channels []string `json:"channels"`
	// Expires is a date (the licence holds through that day, UTC) or an
	// RFC 3339 time; absent or null: never.
	Expires *string `json:"expires"`
	// CreateChannels makes the channels the catalogue lacks.
	CreateChannels bool `json:"create_channels"`
}

// createdAccount is the answer to POST /accounts: the token is shown
// only in it.
type createdAccount struct {
	Account accounts.Account `json:"account"`
	Token   string           `json:"token"`
}

func (a *api) createAccount(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	var in createAccount
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	var errs []fieldError
	if in.Email == nil {
		errs = append(errs, fieldError{Field: "/email", Detail: "required"})
	} else if _, err := accounts.NormalizeEmail(*in.Email); err != nil {
		errs = append(errs, fieldError{Field: "/email", Detail: err.Error()})
	}
	if len(in.Channels) == 0 {
		errs = append(errs, fieldError{Field: "/channels", Detail: "required: at least one channel"})
	} else if _, err := accounts.NormalizeChannels(in.Channels); err != nil {
		errs = append(errs, fieldError{Field: "/channels", Detail: err.Error()})
	}
	var expires time.Time
	if in.Expires != nil {
		var err error
		if expires, err = a.parseExpiry(*in.Expires); err != nil {
			errs = append(errs, fieldError{Field: "/expires", Detail: err.Error()})
		}
	}
	if len(errs) > 0 {
		return invalid("the account cannot be created as given; nothing changed", errs...)
	}
	var opts []accounts.GrantOption
	if in.CreateChannels {
		opts = append(opts, accounts.CreateChannels())
	}
	acct, token, err := a.db.Add(r.Context(), key.Name, *in.Email, in.Channels, expires, opts...)
	if err != nil {
		return unknownChannel(err, "/channels")
	}
	w.Header().Set("Location", Prefix+"/accounts/"+url.PathEscape(acct.Email))
	return writeJSON(w, http.StatusCreated, createdAccount{acct, token})
}

// parseExpiry reads an expires field: a date or an RFC 3339 time, in the
// future.
func (a *api) parseExpiry(s string) (time.Time, error) {
	if s == "" || s == "never" {
		return time.Time{}, &accounts.Error{Kind: accounts.ErrInvalid, Msg: `want a date (2027-06-30) or an RFC 3339 time; null for never`}
	}
	return accounts.ParseExpiry(s, a.now())
}

func (a *api) listAccounts(w http.ResponseWriter, r *http.Request, _ accounts.AdminKey) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	var after string
	if c := r.URL.Query().Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(b) == 0 {
			return invalid("bad paging", fieldError{Field: "cursor", Detail: "not a cursor this API gave"})
		}
		after = string(b)
	}
	q := r.URL.Query().Get("q")
	if len(q) > 254 {
		return invalid("bad search", fieldError{Field: "q", Detail: "longer than an e-mail address can be"})
	}
	list, more, err := a.db.AccountPage(r.Context(), q, after, limit)
	if err != nil {
		return err
	}
	out := page[accounts.Account]{Items: list}
	if out.Items == nil {
		out.Items = []accounts.Account{}
	}
	if more {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(list[len(list)-1].Email))
	}
	return writeJSON(w, http.StatusOK, out)
}

// accountView is an account as GET shows it: with its grants.
type accountView struct {
	accounts.Account
	Grants []accounts.Grant `json:"grants"`
}

// etag is the entity tag of an account as shown: any change to it, its
// grants or its tokens changes the tag.
func etag(v accountView) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// shownAccount is an account as GET of one shows it: with its usage
// summary, which is not part of the ETag (a pull does not change the
// account an admin edits).
type shownAccount struct {
	accountView
	Usage accounts.AccountUsage `json:"usage"`
}

func (a *api) showAccount(w http.ResponseWriter, r *http.Request, _ accounts.AdminKey) error {
	acct, grants, err := a.db.ShowGrants(r.Context(), pathParam(r, "email"))
	if err != nil {
		return err
	}
	usage, err := a.db.AccountUsage(r.Context(), acct.Email)
	if err != nil {
		return err
	}
	v := accountView{acct, grants}
	w.Header().Set("ETag", etag(v))
	return writeJSON(w, http.StatusOK, shownAccount{v, usage})
}

// ifMatch returns the check of a change against the If-Match header: the
// change goes ahead only on the account the client last saw.
func ifMatch(r *http.Request) (func(accounts.Account, []accounts.Grant) error, error) {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil, problemf(http.StatusPreconditionRequired, "precondition-required", "Precondition Required",
			"If-Match is required: send the ETag of a GET of the account, so that a change made since is not overwritten")
	}
	return func(acct accounts.Account, grants []accounts.Grant) error {
		tag := etag(accountView{acct, grants})
		for t := range strings.SplitSeq(h, ",") {
			if t = strings.TrimSpace(t); t == "*" || t == tag {
				return nil
			}
		}
		return problemf(http.StatusPreconditionFailed, "precondition-failed", "Precondition Failed",
			"the account changed since that ETag: GET it again and retry; nothing changed")
	}, nil
}

// patchAccount is the body of PATCH /accounts/{email}.
type patchAccount struct {
	Disabled *bool `json:"disabled"`
	// Expires: a date or an RFC 3339 time; null: never.
	Expires json.RawMessage `json:"expires"`
	// SelfServiceTokens lets the customer manage their own tokens in the
	// console.
	SelfServiceTokens *bool `json:"self_service_tokens"`
}

func (a *api) patchAccount(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	check, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in patchAccount
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	var c accounts.AccountChange
	if in.Disabled != nil {
		state := accounts.StateActive
		if *in.Disabled {
			state = accounts.StateDisabled
		}
		c.State = &state
	}
	if in.Expires != nil {
		var exp time.Time
		if string(in.Expires) != "null" {
			var s string
			if err := json.Unmarshal(in.Expires, &s); err != nil {
				return invalid("the account cannot be changed as given; nothing changed", fieldError{Field: "/expires", Detail: "want a date, an RFC 3339 time or null"})
			}
			if exp, err = a.parseExpiry(s); err != nil {
				return invalid("the account cannot be changed as given; nothing changed", fieldError{Field: "/expires", Detail: err.Error()})
			}
		}
		c.Expires = &exp
	}
	c.SelfServiceTokens = in.SelfServiceTokens
	if c.State == nil && c.Expires == nil && c.SelfServiceTokens == nil {
		return invalid("nothing to change: give disabled, expires, self_service_tokens or several")
	}
	acct, grants, err := a.db.ChangeAccount(r.Context(), key.Name, pathParam(r, "email"), check, c)
	if err != nil {
		return err
	}
	v := accountView{acct, grants}
	w.Header().Set("ETag", etag(v))
	return writeJSON(w, http.StatusOK, v)
}

func (a *api) deleteAccount(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	check, err := ifMatch(r)
	if err != nil {
		return err
	}
	if _, _, err := a.db.ChangeAccount(r.Context(), key.Name, pathParam(r, "email"), check, accounts.AccountChange{Delete: true}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
