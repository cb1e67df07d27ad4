package httpx

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// Error codes of the distribution error format, plus the OAuth2 one the
// token endpoint needs (CodeInvalidRequest) and the two of server errors
// (CodeUnavailable, CodeUnknown).
//
// A 4xx answer of the registry API uses only SpecCodes: the OCI
// distribution spec ("Error Codes") allows a 4XX body in any format, but a
// JSON one's code "MUST be one of the following" fourteen. It sets no rule
// for 5xx answers; those keep distribution's UNAVAILABLE and UNKNOWN, which
// say more than any of the fourteen would.
const (
	CodeBlobUnknown     = "BLOB_UNKNOWN"
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeDenied          = "DENIED"
	CodeUnsupported     = "UNSUPPORTED"
	CodeNameInvalid     = "NAME_INVALID"
	CodeNameUnknown     = "NAME_UNKNOWN"
	CodeManifestUnknown = "MANIFEST_UNKNOWN"
	CodeDigestInvalid   = "DIGEST_INVALID"
	CodeTooManyRequests = "TOOMANYREQUESTS"
	CodeTooLarge        = "SIZE_INVALID"
	CodeUnavailable     = "UNAVAILABLE"
	CodeInvalidRequest  = "INVALID_REQUEST"
	CodeUnknown         = "UNKNOWN"
)

// SpecCodes are the error codes of the OCI distribution spec, in its order
// (code-1 to code-14), with the message distribution gives each.
var SpecCodes = [...]struct{ Code, Message string }{
	{"BLOB_UNKNOWN", "blob unknown to registry"},
	{"BLOB_UPLOAD_INVALID", "blob upload invalid"},
	{"BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"},
	{"DIGEST_INVALID", "provided digest did not match uploaded content"},
	{"MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"},
	{"MANIFEST_INVALID", "manifest invalid"},
	{"MANIFEST_UNKNOWN", "manifest unknown"},
	{"NAME_INVALID", "invalid repository name"},
	{"NAME_UNKNOWN", "repository name not known to registry"},
	{"SIZE_INVALID", "provided length did not match content length"},
	{"UNAUTHORIZED", "authentication required"},
	{"DENIED", "requested access to the resource is denied"},
	{"UNSUPPORTED", "The operation is unsupported."},
	{"TOOMANYREQUESTS", "too many requests"},
}

// SpecMessage is the standard message of a spec code, and whether code is
// one.
func SpecMessage(code string) (string, bool) {
	for _, c := range SpecCodes {
		if c.Code == code {
			return c.Message, true
		}
	}
	return "", false
}

// StatusClientClosedRequest is the status (nginx's) logged for a request
// whose client hung up before the answer; the client never sees it.
const StatusClientClosedRequest = 499

// ClientClosed is the Error for a request whose client went away: logged at
// INFO, since nothing is wrong on the server's side.
func ClientClosed(err error) *Error {
	return &Error{Status: StatusClientClosedRequest, Code: CodeUnknown, Message: "client closed request", Err: err}
}

// Error is an error a handler returns to answer the client: Status, Code and
// Message are what the client sees; Err is the detail that is only logged.
type Error struct {
	Status  int
	Code    string
	Message string
	// Detail is sent as the error's "detail" field when not nil.
	Detail any
	// Header is set on the response (WWW-Authenticate, Retry-After, …).
	Header http.Header
	// Err is the cause, for the log only.
	Err error
	// Extra fields merged into the top-level JSON object, for the OAuth2
	// error form ("error", "error_description").
	Extra map[string]string
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with no cause.
func Errorf(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// WithHeader sets a response header and returns e.
func (e *Error) WithHeader(key, value string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Set(key, value)
	return e
}

// Wrap records the cause for the log and returns e.
func (e *Error) Wrap(err error) *Error {
	e.Err = err
	return e
}

// HandlerFunc is a handler that returns its failure instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler adapts HandlerFuncs to http.Handler, writing errors as registry
// JSON and logging their detail.
type Handler struct {
	Log *slog.Logger
}

// Func wraps f.
func (h Handler) Func(f HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			h.WriteError(w, r, err)
		}
	})
}

// WriteError answers err: an *Error as it says, anything else as a 500
// whose message says nothing of the cause. The detail goes on the request's
// access Record (see AccessLog), which logs it; only a request outside that
// middleware gets a line of its own here.
func (h Handler) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	h.writeError(w, r, RecordOf(r.Context()), err)
}

// WriteErrorTo is WriteError for a handler that holds the request's access
// record: the detail goes on rec (nil: a line of its own).
func (h Handler) WriteErrorTo(w http.ResponseWriter, r *http.Request, rec *Record, err error) {
	h.writeError(w, r, rec, err)
}

func (h Handler) writeError(w http.ResponseWriter, r *http.Request, rec *Record, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: CodeUnknown, Message: "internal error", Err: err}
	}
	if rec != nil {
		// The access line carries the detail: one line per request.
		rec.Err = e
	} else if h.Log != nil {
		level := slog.LevelInfo
		if e.Status >= 500 && e.Status != StatusClientClosedRequest {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", e.Status), slog.String("code", e.Code), slog.String("message", e.Message),
		}
		if e.Err != nil {
			attrs = append(attrs, slog.String("error", e.Err.Error()))
		}
		h.Log.LogAttrs(r.Context(), level, "request failed", attrs...)
	}
	for k, vs := range e.Header {
		w.Header()[k] = vs
	}
	body := map[string]any{"errors": []errorJSON{{Code: e.Code, Message: e.Message, Detail: e.Detail}}}
	for k, v := range e.Extra {
		body[k] = v
	}
	if r.Method == http.MethodHead {
		// No body, but the length of the one a GET gets: clients (and
		// caches) take a HEAD's Content-Length as the GET's.
		data, err := encodeJSON(body)
		if err != nil {
			data = internalErrorJSON
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(e.Status)
		return
	}
	WriteJSON(w, e.Status, body)
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// WriteJSON writes v as the JSON body of a response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	data, err := encodeJSON(v)
	if err != nil {
		http.Error(w, string(internalErrorJSON), http.StatusInternalServerError)
		return
	}
	WriteJSONBody(w, status, data)
}

// WriteJSONBody is WriteJSON for a body already encoded, by a hot path
// that writes its JSON by hand. The length is declared: net/http works it
// out by itself only for bodies up to 2 KB, and sends a larger one (a
// token with x5c) chunked.
func WriteJSONBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var internalErrorJSON = []byte(`{"errors":[{"code":"UNKNOWN","message":"internal error"}]}` + "\n")

// encodeJSON is the body WriteJSON writes for v.
func encodeJSON(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
