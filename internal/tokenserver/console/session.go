package console

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// Cookies of the console; both are confined to Prefix.
const (
	// sessionCookie carries the session id.
	sessionCookie = "rg_console"
	// preCookie carries the double-submit token of the sign-in forms,
	// which are sent before there is a session.
	preCookie = "rg_console_pre"
	// csrfField is the form field of the CSRF token.
	csrfField = "csrf"
)

// maxFormBytes bounds a form body: the largest is a sign-in.
const maxFormBytes = 16 << 10

// csrfOf is the CSRF token of a session: derived from its id, so that it
// is the same on every replica, known only to whoever holds the session,
// and not derivable from the hash the database keeps (a different
// function of the id).
func csrfOf(sessionID string) string {
	sum := sha256.Sum256([]byte("registry-gateway console csrf\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// secureCookies: a cookie is Secure when the console is reached over
// HTTPS, directly or (public_url) through a proxy that ends TLS.
func (c *Console) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(c.cfg.PublicURL, "https://")
}

// session returns the request's live session and its id, or
// accounts.ErrNoSession.
func (c *Console) session(r *http.Request) (accounts.Session, string, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return accounts.Session{}, "", accounts.ErrNoSession
	}
	s, err := c.db.Session(r.Context(), ck.Value, c.cfg.SessionIdle)
	if err != nil {
		return accounts.Session{}, "", err
	}
	return s, ck.Value, nil
}

// startSession stores a session and sets its cookie. The cookie has no
// Max-Age: it ends with the browser as well as with the session.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, n accounts.NewSession) error {
	n.Lifetime = c.cfg.SessionMax
	// A session id the client held before signing in is dropped, so that
	// a planted cookie never becomes a signed-in session (fixation).
	if ck, err := r.Cookie(sessionCookie); err == nil {
		_ = c.db.DeleteSession(r.Context(), ck.Value)
	}
	id, _, err := c.db.CreateSession(r.Context(), n)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: Prefix, HttpOnly: true, Secure: c.secureCookies(r), SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: c.secureCookies(r), SameSite: http.SameSiteStrictMode})
	return nil
}

// endSession signs the request's session out and clears its cookie.
func (c *Console) endSession(w http.ResponseWriter, r *http.Request) error {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if err := c.db.DeleteSession(r.Context(), ck.Value); err != nil {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: c.secureCookies(r), SameSite: http.SameSiteLaxMode})
	return nil
}

// preToken returns the double-submit token of the sign-in forms, setting
// its cookie when the browser has none.
func (c *Console) preToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(preCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: v, Path: Prefix, HttpOnly: true, Secure: c.secureCookies(r), SameSite: http.SameSiteStrictMode})
	return v
}

// parseForm reads a bounded urlencoded form.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &pageError{Status: http.StatusBadRequest, Title: "Bad request", Message: "The form could not be read."}
	}
	return nil
}

// checkPreCSRF checks the double-submit token of a sign-in form.
func checkPreCSRF(r *http.Request) error {
	ck, err := r.Cookie(preCookie)
	if err != nil || !equalTokens(ck.Value, r.PostForm.Get(csrfField)) {
		return errCSRF
	}
	return nil
}

// errCSRF refuses a form without the token of its session.
var errCSRF = &pageError{Status: http.StatusForbidden, Title: "Form refused",
	Message: "This form was not sent from a page of the console of your current session (its security token is missing or out of date). Go back, reload the page and send it again."}

// request is what an authenticated handler gets: the session, passed
// explicitly.
type request struct {
	s  accounts.Session
	id string
}

func (q *request) csrf() string { return csrfOf(q.id) }

// handlerFunc is a page: it answers, or returns the error to answer with.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// sessionFunc is a page of a signed-in user.
type sessionFunc func(w http.ResponseWriter, r *http.Request, q *request) error

// page runs h and renders what it returns.
func (c *Console) page(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r); err != nil {
			c.fail(w, r, err)
		}
	})
}

// signedIn runs h for a session of kind; a state-changing request must
// carry the session's CSRF token. Without a live session, a page asks to
// sign in again.
func (c *Console) signedIn(kind string, h sessionFunc) http.Handler {
	return c.page(func(w http.ResponseWriter, r *http.Request) error {
		s, id, err := c.session(r)
		if errors.Is(err, accounts.ErrNoSession) {
			return errSignIn
		}
		if err != nil {
			return err
		}
		if s.Kind != kind {
			return &pageError{Status: http.StatusForbidden, Title: "Not for this sign-in", Message: "This page is for the " + kind + "'s side of the console; you are signed in as a " + s.Kind + "."}
		}
		q := &request{s: s, id: id}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := parseForm(w, r); err != nil {
				return err
			}
			if !equalTokens(q.csrf(), r.PostForm.Get(csrfField)) {
				c.log.Warn("console: form refused without its CSRF token", slog.String("client", c.client(r)), slog.String("path", r.URL.Path))
				return errCSRF
			}
		}
		return h(w, r, q)
	})
}

// errSignIn: no live session (never signed in, signed out, expired).
var errSignIn = &pageError{Status: http.StatusUnauthorized, Title: "Please sign in",
	Message: "You are not signed in, or your session has ended (it ends after a while without use, and after a sign-out on any device).", SignIn: true}

// pageError is an error page.
type pageError struct {
	Status  int
	Title   string
	Message string
	// SignIn offers the sign-in link.
	SignIn bool
	// Retry is when the client may try again (429).
	Retry time.Duration
}

func (e *pageError) Error() string { return e.Title + ": " + e.Message }

func notFound() error {
	return &pageError{Status: http.StatusNotFound, Title: "Not found", Message: "There is no such page in the console."}
}

// fail renders err: a pageError as itself, an accounts error by its kind,
// anything else as a 500 whose cause is logged, never shown.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	pe, ok := errors.AsType[*pageError](err)
	if !ok {
		var ae *accounts.Error
		switch {
		case errors.As(err, &ae) && errors.Is(err, accounts.ErrNotFound):
			pe = &pageError{Status: http.StatusNotFound, Title: "Not found", Message: ae.Msg}
		case errors.As(err, &ae) && errors.Is(err, accounts.ErrConflict):
			pe = &pageError{Status: http.StatusConflict, Title: "Not done", Message: ae.Msg}
		case errors.As(err, &ae) && errors.Is(err, accounts.ErrInvalid):
			pe = &pageError{Status: http.StatusBadRequest, Title: "Not done", Message: ae.Msg}
		default:
			c.log.Error("console: request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
			pe = &pageError{Status: http.StatusInternalServerError, Title: "Something went wrong", Message: "The console could not answer this request. Try again in a moment; if it keeps failing, the operators have the details in the log."}
		}
	}
	if pe.Retry > 0 {
		w.Header().Set("Retry-After", retryAfter(pe.Retry))
	}
	v := c.view(r, pe.Title)
	v.Error = pe
	c.render(w, pe.Status, "error", v)
}

// render executes page into a buffer first, so that a template error is a
// clean 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, status int, page string, v *view) error {
	t, ok := c.pages[page]
	if !ok {
		return errors.New("console: no page " + page)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.log.Error("console: rendering", slog.String("page", page), slog.Any("error", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
	return nil
}

// view is what every page template gets: the layout's fields and the
// page's own data in Data.
type view struct {
	Title string
	// Signed: a session; Kind and Subject are who.
	Signed  bool
	Kind    string
	Subject string
	// CSRF is the token every form of the page carries.
	CSRF string
	// Nav marks the current section.
	Nav          string
	RegistryHost string
	Error        *pageError
	Flash        string
	Data         any
}

func (c *Console) view(r *http.Request, title string) *view {
	return &view{Title: title}
}

func (v *view) setSession(s accounts.Session, id string) {
	v.Signed, v.Kind, v.Subject, v.CSRF = true, s.Kind, s.Subject, csrfOf(id)
}

// sessionView is a page's view for a signed-in request.
func (c *Console) sessionView(r *http.Request, q *request, title, nav string) *view {
	v := c.view(r, title)
	v.setSession(q.s, q.id)
	v.Nav = nav
	v.RegistryHost = c.registryHost
	return v
}

func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// command is a copyable command of a page (the "command" template).
type command struct{ ID, Text string }

var funcs = template.FuncMap{
	"cmd": func(id, text string) command { return command{ID: id, Text: text} },
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(time.DateOnly)
	},
}
