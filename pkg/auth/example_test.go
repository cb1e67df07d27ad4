package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/pkg/auth"
)

// The token service signs a token granting pull on one repository; the
// gateway verifies it with the published key and checks the grant.
func ExampleSigningKey_Sign() {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	key, err := auth.NewSigningKey(priv, nil) // ES256, kid = RFC 7638 thumbprint
	if err != nil {
		panic(err)
	}

	now := time.Now()
	raw, err := key.Sign(&auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "registry-token-service",
			Subject:   "alice@example.com",
			Audience:  jwt.ClaimStrings{"registry.example.com"},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
			ID:        auth.NewTokenID(),
		},
		Access: []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}},
	})
	if err != nil {
		panic(err)
	}

	v := auth.NewVerifier(auth.VerifierConfig{
		Issuer:   "registry-token-service",
		Audience: "registry.example.com",
		Keys:     auth.StaticKeys{key.KeyID: priv.Public()},
	})
	claims, err := v.Verify(context.Background(), raw)
	if err != nil {
		panic(err)
	}
	fmt.Println("alg:", key.Method.Alg())
	fmt.Println("subject:", claims.Subject)
	fmt.Println("pull stable/app:", claims.Allows("repository", "stable/app", "pull"))
	fmt.Println("pull stable/app2:", claims.Allows("repository", "stable/app2", "pull"))

	// A verifier that does not know the key refuses the token, and says why.
	other := auth.NewVerifier(auth.VerifierConfig{
		Issuer:   "registry-token-service",
		Audience: "registry.example.com",
		Keys:     auth.StaticKeys{},
	})
	_, err = other.Verify(context.Background(), raw)
	var verr *auth.VerifyError
	if errors.As(err, &verr) {
		fmt.Println("refused:", verr.Reason)
	}
	// Output:
	// alg: ES256
	// subject: alice@example.com
	// pull stable/app: true
	// pull stable/app2: false
	// refused: unknown_key
}

// A client's scope parameter parsed into what it asks for; the channel is
// the repository's first path component.
func ExampleParseScope() {
	ra, err := auth.ParseScope("repository:stable/app:pull,push")
	if err != nil {
		panic(err)
	}
	fmt.Println(ra.Type, ra.Name, ra.Actions)
	fmt.Println("channel:", auth.Channel(ra.Name))
	fmt.Println("pull:", ra.Has(auth.ActionPull))

	_, err = auth.ParseScope("repository:Stable/App:pull")
	fmt.Println(err)
	// Output:
	// repository stable/app [pull push]
	// channel: stable
	// pull: true
	// invalid scope "repository:Stable/App:pull": bad repository name
}

// Several scope parameters, some space-separated, merged per resource.
func ExampleParseScopes() {
	scopes, err := auth.ParseScopes([]string{
		"repository:stable/app:pull",
		"repository:stable/app:push repository:beta/tool:pull",
	})
	if err != nil {
		panic(err)
	}
	for _, s := range scopes {
		fmt.Println(s)
	}
	// Output:
	// repository:stable/app:pull,push
	// repository:beta/tool:pull
}

// The gateway's 401 for a token that does not grant the repository, and
// what a client reads back from it.
func ExampleChallenge() {
	c := auth.Challenge{
		Realm:            "https://registry.example.com/token",
		Service:          "registry.example.com",
		Scope:            "repository:beta/app:pull",
		Error:            "insufficient_scope",
		ErrorDescription: "the token does not grant pull on channel 'beta'",
	}
	header := c.String()
	fmt.Println(header)

	parsed, err := auth.ParseChallenge(header)
	if err != nil {
		panic(err)
	}
	fmt.Println(parsed.Realm)
	fmt.Println(parsed.Scope)
	// Output:
	// Bearer realm="https://registry.example.com/token",service="registry.example.com",scope="repository:beta/app:pull",error="insufficient_scope",error_description="the token does not grant pull on channel 'beta'"
	// https://registry.example.com/token
	// repository:beta/app:pull
}

// A registry that wants Basic credentials is not a token registry.
func ExampleParseChallenge() {
	_, err := auth.ParseChallenge(`Basic realm="registry"`)
	var scheme *auth.SchemeError
	fmt.Println(errors.As(err, &scheme), scheme.Scheme)
	// Output:
	// true Basic
}
