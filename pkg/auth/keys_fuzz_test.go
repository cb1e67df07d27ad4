package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"testing"
)

// seedJWKS is what the token service publishes for an EC and an RSA key; it
// is written out rather than generated so that each fuzz worker starts
// without the seconds an RSA key generation can take.
const seedJWKS = `{"keys":[{"kty":"EC","use":"sig","alg":"ES256","kid":"Z32ZrNG2CH8JNjizYX4IDSb7lLEjhU2TKFl5_AVkjqs","crv":"P-256","x":"LleBeVujn4Suc4uqbBS0RzosHikn6nq7bMM2cQRudlo","y":"lprZw2AOH5OEK5CbzyYkIJ7ESa5cG3xl4iKpMQqv4p0"},{"kty":"RSA","use":"sig","alg":"RS256","kid":"62KAYocU2iRnSvyqIG-6QNwOAJf1MJr1VoeBbsE-4TE","n":"3RCPNZLU8JuQhFlUvQcNahltyT31rYpynx2ahIsGw29EdQDczfWZwjdhAupw9-z3nfCqD91olVnqqCLAFu6lelQ3zysYN1AgL__UY2YgcftfMAt5yWQaNRSIQXVwwuOopEhzErWWkWg2eiFPeRTLjLBh87yaWGGnrCIU92ab2Uv-Aytysby26j3BOvXRj_OHynY9lLZMaUxhpPyHmZ0As1ok7snXr3_GKXoEUIp5ltfS4dDj03FiMHJxbhKd6O5FwccHeZ5mrapYtfrwwNv-GH_tq5pTXmNIGGlKM8N1ZMlkVeds_jx8rPHRhkrtmVF-kkZDl-R3vSJp4USRE98SIw","e":"AQAB"}]}`

// FuzzParseJWKS feeds key set documents to ParseJWKS, the parser of what the
// gateway fetches from keys.jwks_url. For any input it must not panic, and
// what it accepts must be keys a token may be verified with: P-256 or RSA of
// a sane size (MethodFor), each under a non-empty kid (its thumbprint when
// the document gave none), re-encoding to the same key.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(seedJWKS))
	// The same keys without kids, which ParseJWKS files by thumbprint.
	var set JWKS
	if err := json.Unmarshal([]byte(seedJWKS), &set); err != nil {
		f.Fatal(err)
	}
	for i := range set.Keys {
		set.Keys[i].Kid = ""
	}
	doc, _ := json.Marshal(set)
	f.Add(doc)
	for _, s := range []string{
		`{`, `null`, `[]`, `{"keys":null}`, `{"keys":[]}`, `{"keys":[{}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-384","x":"AQ","y":"AQ"}]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAAAAAAAAAA"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AQ"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			if keys != nil {
				t.Fatalf("keys %v with error %v", keys, err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("accepted a key set without keys")
		}
		var parsed JWKS
		if err := json.Unmarshal(data, &parsed); err != nil {
			t.Fatalf("accepted a document encoding/json refuses: %v", err)
		}
		for kid, pub := range keys {
			if kid == "" {
				t.Fatal("key filed under an empty kid")
			}
			method, err := MethodFor(pub)
			if err != nil {
				t.Fatalf("kid %q: accepted an unusable key: %v", kid, err)
			}
			switch k := pub.(type) {
			case *ecdsa.PublicKey:
				if k.Curve != elliptic.P256() || method.Alg() != "ES256" {
					t.Fatalf("kid %q: EC key on %v as %s", kid, k.Curve, method.Alg())
				}
			case *rsa.PublicKey:
				if method.Alg() != "RS256" || k.N.BitLen() > maxRSABits {
					t.Fatalf("kid %q: RSA key of %d bits as %s", kid, k.N.BitLen(), method.Alg())
				}
			}
			jwk, err := NewJWK(pub)
			if err != nil {
				t.Fatalf("kid %q: cannot re-encode: %v", kid, err)
			}
			again, err := jwk.PublicKey()
			if err != nil || !again.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Fatalf("kid %q: re-encoded key differs (%v)", kid, err)
			}
		}
		// A key given without a kid is filed under its thumbprint.
		for _, j := range parsed.Keys {
			if j.Kid != "" {
				continue
			}
			pub, err := j.PublicKey()
			if err != nil {
				t.Fatalf("a key of an accepted set does not decode: %v", err)
			}
			tp, _ := Thumbprint(pub)
			if _, ok := keys[tp]; !ok {
				t.Fatalf("key without kid not filed under its thumbprint %s", tp)
			}
		}
	})
}
