package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// putGrant is the optional body of PUT /accounts/{email}/channels/{channel}.
type putGrant struct {
	// Expires: a date or an RFC 3339 time; absent or null: as long as the
	// account.
	Expires *string `json:"expires"`
}

func (a *api) putGrant(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	var in putGrant
	if err := decodeOptionalBody(w, r, &in); err != nil {
		return err
	}
	var expires time.Time
	if in.Expires != nil {
		var err error
		if expires, err = a.parseExpiry(*in.Expires); err != nil {
			return invalid("the grant cannot be made as given; nothing changed", fieldError{Field: "/expires", Detail: err.Error()})
		}
	}
	channel := pathParam(r, "channel")
	if _, err := accounts.NormalizeChannels([]string{channel}); err != nil {
		return invalid("bad channel", fieldError{Field: "channel", Detail: err.Error()})
	}
	g, created, err := a.db.SetGrant(r.Context(), key.Name, pathParam(r, "email"), channel, expires)
	if err != nil {
		return unknownChannel(err, "channel")
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeJSON(w, status, g)
}

func (a *api) deleteGrant(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	if err := a.db.Ungrant(r.Context(), key.Name, pathParam(r, "email"), []string{pathParam(r, "channel")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createToken is the body of POST /accounts/{email}/tokens.
type createToken struct {
	Name *string `json:"name"`
}

// createdToken is the answer to a token's creation or rotation: the token
// is shown only in it.
type createdToken struct {
	Revoked *accounts.Token     `json:"revoked,omitempty"`
	Created accounts.NamedToken `json:"created"`
	Token   string              `json:"token"`
}

func (a *api) createToken(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	var in createToken
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return invalid("the token cannot be made as given; nothing changed", fieldError{Field: "/name", Detail: "required: which of the customer's systems holds it (ci, prod-cluster)"})
	}
	if err := accounts.CheckTokenName(*in.Name); err != nil {
		return invalid("the token cannot be made as given; nothing changed", fieldError{Field: "/name", Detail: err.Error()})
	}
	tok, token, err := a.db.AddNamedToken(r.Context(), key.Name, pathParam(r, "email"), *in.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, createdToken{Created: tok, Token: token})
}

func (a *api) listTokens(w http.ResponseWriter, r *http.Request, _ accounts.AdminKey) error {
	list, err := a.db.NamedTokens(r.Context(), pathParam(r, "email"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page[accounts.NamedToken]{Items: list})
}

// tokenID is the {id} of the path.
func tokenID(r *http.Request) (string, error) {
	id := pathParam(r, "id")
	if n, err := strconv.ParseInt(id, 10, 64); err != nil || n < 1 {
		return "", invalid("bad token id", fieldError{Field: "id", Detail: "want the token's id, a whole number (GET …/tokens lists them)"})
	}
	return id, nil
}

func (a *api) revokeToken(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	id, err := tokenID(r)
	if err != nil {
		return err
	}
	tok, err := a.db.RevokeToken(r.Context(), key.Name, pathParam(r, "email"), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tok)
}

func (a *api) rotateToken(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	id, err := tokenID(r)
	if err != nil {
		return err
	}
	old, created, token, err := a.db.RotateNamedToken(r.Context(), key.Name, pathParam(r, "email"), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, createdToken{Revoked: &old, Created: created, Token: token})
}
