// Package auth is the contract shared by the token service and the gateway:
// the scope grammar of the Docker registry token spec, the access claims a
// token carries, how tokens are signed and verified, and the wire format of
// the Bearer challenge that sends a client to the token service (Challenge,
// written by the gateway and parsed by clients with ParseChallenge).
//
// It knows nothing of HTTP servers, license backends or the upstream
// registry: the token service decides what to grant and signs it with a
// SigningKey; the gateway checks it with a Verifier and asks the Claims
// whether a request is covered.
package auth
