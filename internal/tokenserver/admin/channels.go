package admin

import (
	"net/http"
	"net/url"

	"github.com/acme/registry-gateway/internal/accounts"
)

func (a *api) listChannels(w http.ResponseWriter, r *http.Request, _ accounts.AdminKey) error {
	list, err := a.db.Channels(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []accounts.Channel{}
	}
	return writeJSON(w, http.StatusOK, page[accounts.Channel]{Items: list})
}

// createChannel is the body of POST /channels.
type createChannel struct {
	Name        *string `json:"name"`
	Description string  `json:"description"`
}

func (a *api) createChannel(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	var in createChannel
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	var errs []fieldError
	if in.Name == nil {
		errs = append(errs, fieldError{Field: "/name", Detail: "required"})
	} else if _, err := accounts.NormalizeChannels([]string{*in.Name}); err != nil {
		errs = append(errs, fieldError{Field: "/name", Detail: err.Error()})
	}
	if _, err := accounts.NormalizeDescription(in.Description); err != nil {
		errs = append(errs, fieldError{Field: "/description", Detail: err.Error()})
	}
	if len(errs) > 0 {
		return invalid("the channel cannot be created as given; nothing changed", errs...)
	}
	ch, err := a.db.AddChannel(r.Context(), key.Name, *in.Name, in.Description)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/channels/"+url.PathEscape(ch.Name))
	return writeJSON(w, http.StatusCreated, ch)
}

// removedChannel is the answer to DELETE /channels/{name}.
type removedChannel struct {
	Removed string `json:"removed"`
	// TakenFrom are the accounts a forced removal took it from.
	TakenFrom []string `json:"taken_from"`
}

func (a *api) deleteChannel(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	force := false
	switch v := r.URL.Query().Get("force"); v {
	case "", "false":
	case "true":
		force = true
	default:
		return invalid("bad parameter", fieldError{Field: "force", Detail: "want true or false"})
	}
	name := pathParam(r, "name")
	holders, err := a.db.RemoveChannel(r.Context(), key.Name, name, force)
	if err != nil {
		return err
	}
	if holders == nil {
		holders = []string{}
	}
	return writeJSON(w, http.StatusOK, removedChannel{name, holders})
}
