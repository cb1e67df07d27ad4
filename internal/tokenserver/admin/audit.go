package admin

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/accounts"
)

// OpenAPIYAML is the API's OpenAPI 3.1 document as kept in the
// repository.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// OpenAPIJSON is the document as served: openapi.yaml as JSON.
var OpenAPIJSON = sync.OnceValue(func() []byte {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		panic("admin: openapi.yaml: " + err.Error())
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic("admin: openapi.yaml: " + err.Error())
	}
	return b
})

func (a *api) openAPI(w http.ResponseWriter, _ *http.Request, _ accounts.AdminKey) error {
	body := OpenAPIJSON()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
	return nil
}

// auditEntry is a row of the admin audit with its number.
type auditEntry struct {
	ID int64 `json:"id"`
	accounts.AuditEntry
}

func (a *api) audit(w http.ResponseWriter, r *http.Request, _ accounts.AdminKey) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	var after int64
	if c := r.URL.Query().Get("cursor"); c != "" {
		if after, err = strconv.ParseInt(c, 10, 64); err != nil || after < 0 {
			return invalid("bad paging", fieldError{Field: "cursor", Detail: "not a cursor this API gave"})
		}
	}
	rows, ids, more, err := a.db.AuditPage(r.Context(), after, limit)
	if err != nil {
		return err
	}
	out := page[auditEntry]{Items: make([]auditEntry, len(rows))}
	for i, e := range rows {
		out.Items[i] = auditEntry{ids[i], e}
	}
	if more {
		out.NextCursor = strconv.FormatInt(ids[len(ids)-1], 10)
	}
	return writeJSON(w, http.StatusOK, out)
}
