package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/acme/registry-gateway/internal/accounts"
)

// defaultPage is the page size of a listing without ?limit.
const defaultPage = 100

// decodeBody reads r's JSON body into v, bounded, refusing unknown fields
// and trailing data; the problem names the field at fault.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return readJSON(w, r, v, false)
}

// decodeOptionalBody is decodeBody for a body that may be left out.
func decodeOptionalBody(w http.ResponseWriter, r *http.Request, v any) error {
	return readJSON(w, r, v, true)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return problemf(http.StatusRequestEntityTooLarge, "too-large", "Content Too Large", "the body is over %d bytes", maxBodyBytes)
		}
		return err
	}
	if len(body) == 0 && optional {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return problemf(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Media Type", "the body must be application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		field := pointer(typeErr.Field)
		return invalid("the body does not match the schema", fieldError{Field: field, Detail: "want a " + typeErr.Type.String() + ", got a JSON " + typeErr.Value})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return invalid("the body has a field this API does not know", fieldError{Field: pointer(name), Detail: "unknown field"})
	}
	return problemf(http.StatusBadRequest, "bad-json", "Bad Request", "the body is not a JSON object: %v", err)
}

// pointer turns encoding/json's dotted field path into a JSON pointer.
func pointer(field string) string {
	if field == "" {
		return ""
	}
	return "/" + strings.ReplaceAll(field, ".", "/")
}

// pathParam is the path parameter name, unescaped.
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// pageLimit reads ?limit.
func pageLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return defaultPage, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > accounts.MaxPage {
		return 0, invalid("bad paging", fieldError{Field: "limit", Detail: "want a whole number from 1 to " + strconv.Itoa(accounts.MaxPage)})
	}
	return n, nil
}

// page is a listing's answer.
type page[T any] struct {
	Items []T `json:"items"`
	// NextCursor, passed as ?cursor, gets the next page; absent on the
	// last one.
	NextCursor string `json:"next_cursor,omitempty"`
}
