package signer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/pkg/auth"
)

func TestHandler(t *testing.T) {
	k, err := fixtures.WriteKey(t.TempDir(), "ES256")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(k.Key))
	defer srv.Close()
	get := func(path string, basic bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if basic {
			req.SetBasicAuth("u@bench.example", "not-checked")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	q := "/token?service=" + fixtures.Service + "&scope=" + url.QueryEscape("repository:"+fixtures.Repo+":pull")
	resp := get(q, true)
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body.Token != body.AccessToken || body.ExpiresIn != 300 {
		t.Fatalf("%d %+v %v", resp.StatusCode, body, err)
	}
	keys, err := auth.LoadPublicKeys(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := auth.NewVerifier(auth.VerifierConfig{Issuer: fixtures.Issuer, Audience: fixtures.Service, Keys: keys}).Verify(context.Background(), body.Token)
	if err != nil || claims.Subject != "u@bench.example" || len(claims.Access) != 1 || claims.Access[0].Name != fixtures.Repo {
		t.Errorf("claims %+v, %v", claims, err)
	}

	if resp := get(q, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no credentials: %d", resp.StatusCode)
	}
	if resp := get("/other", true); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("other path: %d", resp.StatusCode)
	}
	if resp := get("/token?scope=nonsense", true); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad scope: %d", resp.StatusCode)
	}
}
