package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestSignInLinks(t *testing.T) {
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg, nil)
		e.call(http.MethodPost, Prefix+"/accounts", e.writeKey, `{"email":"alice@example.com","channels":["stable"]}`).want(t, http.StatusCreated)

		type link struct {
			URL     string    `json:"url"`
			Expires time.Time `json:"expires"`
		}
		l := decode[link](t, e.call(http.MethodPost, Prefix+"/accounts/alice@example.com/sign-in-links", e.writeKey, "").want(t, http.StatusCreated))
		if !strings.HasPrefix(l.URL, e.base+"/console/link?t=") || !l.Expires.Equal(t0.Add(72*time.Hour)) {
			t.Errorf("link %+v", l)
		}
		secret := strings.TrimPrefix(l.URL, e.base+"/console/link?t=")
		if email, err := e.db.RedeemSignInLink(t.Context(), secret); err != nil || email != "alice@example.com" {
			t.Errorf("redeem: %q, %v", email, err)
		}
		// Audited with the key's name; the link itself is nowhere in the audit.
		audit, err := e.db.Audit(t.Context(), "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		last := audit[len(audit)-1]
		if last.Action != "signin_link.create" || last.Actor != "crm" || strings.Contains(last.Detail, secret) {
			t.Errorf("audit %+v", last)
		}

		e.call(http.MethodPost, Prefix+"/accounts/nobody@example.com/sign-in-links", e.writeKey, "").problem(t, http.StatusNotFound, "not-found")
		e.call(http.MethodPost, Prefix+"/accounts/alice@example.com/sign-in-links", e.readKey, "").problem(t, http.StatusForbidden, "forbidden")
		e.call(http.MethodPost, Prefix+"/accounts/alice@example.com/sign-in-links", "", "").problem(t, http.StatusUnauthorized, "unauthorized")
		if err := e.db.SetState(t.Context(), "test", "alice@example.com", accounts.StateDisabled); err != nil {
			t.Fatal(err)
		}
		e.call(http.MethodPost, Prefix+"/accounts/alice@example.com/sign-in-links", e.writeKey, "").problem(t, http.StatusConflict, "conflict")
	})
}

func TestSelfServiceTokensFlag(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t), nil)
	e.call(http.MethodPost, Prefix+"/accounts", e.writeKey, `{"email":"alice@example.com","channels":["stable"]}`).want(t, http.StatusCreated, `"self_service_tokens":false`)
	e.call(http.MethodPatch, Prefix+"/accounts/alice@example.com", e.writeKey, `{"self_service_tokens":true}`, "If-Match", "*").want(t, http.StatusOK, `"self_service_tokens":true`)
	e.call(http.MethodGet, Prefix+"/accounts/alice@example.com", e.readKey, "").want(t, http.StatusOK, `"self_service_tokens":true`)
	if on, err := e.db.SelfServiceTokens(t.Context(), "alice@example.com"); err != nil || !on {
		t.Errorf("SelfServiceTokens = %v, %v", on, err)
	}
	audit, err := e.db.Audit(t.Context(), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if last := audit[len(audit)-1]; last.Action != "self_service" || last.Detail != "tokens=true" || last.Actor != "crm" {
		t.Errorf("audit %+v", last)
	}
	e.call(http.MethodPatch, Prefix+"/accounts/alice@example.com", e.writeKey, `{"self_service_tokens":"yes"}`, "If-Match", "*").problem(t, http.StatusUnprocessableEntity, "validation", "/self_service_tokens")
}
