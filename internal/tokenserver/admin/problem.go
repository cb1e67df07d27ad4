package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/acme/registry-gateway/internal/accounts"
)

// problemTypeBase starts the type URI of every problem: a URN, since the
// problem types are documented in docs/accounts.md, not at a URL.
const problemTypeBase = "urn:registry-gateway:admin:problem:"

// problem is an RFC 9457 problem details document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Errors name the fields of a validation problem.
	Errors []fieldError `json:"errors,omitempty"`

	header http.Header
}

// fieldError is one invalid field: a JSON pointer into the request body,
// or the name of a query parameter or header.
type fieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func (p *problem) Error() string { return p.Detail }

func problemf(status int, kind, title, format string, args ...any) *problem {
	return &problem{Type: problemTypeBase + kind, Title: title, Status: status, Detail: fmt.Sprintf(format, args...)}
}

// invalid is a validation problem naming its fields.
func invalid(detail string, errs ...fieldError) *problem {
	p := problemf(http.StatusUnprocessableEntity, "validation", "Invalid Request", "%s", detail)
	p.Errors = errs
	return p
}

func (p *problem) withHeader(k, v string) *problem {
	if p.header == nil {
		p.header = http.Header{}
	}
	p.header.Set(k, v)
	return p
}

func writeProblem(w http.ResponseWriter, p *problem) {
	for k, v := range p.header {
		w.Header()[k] = v
	}
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// writeError answers with err as a problem: the account store's errors by
// their kind, anything else as a 500 whose cause is logged, not shown.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var p *problem
	switch {
	case errors.As(err, &p):
	case errors.Is(err, accounts.ErrNotFound):
		p = problemf(http.StatusNotFound, "not-found", "Not Found", "%s", err.Error())
	case errors.Is(err, accounts.ErrConflict):
		p = problemf(http.StatusConflict, "conflict", "Conflict", "%s", err.Error())
	case errors.Is(err, accounts.ErrInvalid):
		p = invalid(err.Error())
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		p = problemf(499, "canceled", "Client Closed Request", "the request was canceled")
	default:
		a.log.Error("admin API", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		p = problemf(http.StatusInternalServerError, "internal", "Internal Server Error", "the request failed; the token service's log has the cause")
	}
	writeProblem(w, p)
}

// unknownChannel makes the refusal of a channel the catalogue lacks,
// named in the body at field, a validation problem; other errors pass.
func unknownChannel(err error, field string) error {
	var unknown *accounts.UnknownChannelError
	if !errors.As(err, &unknown) {
		return err
	}
	p := problemf(http.StatusUnprocessableEntity, "unknown-channel", "Unknown Channel", "%s; nothing changed", err.Error())
	p.Errors = []fieldError{{Field: field, Detail: err.Error()}}
	return p
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}
