// Package gateway is the read-only registry gateway: it answers the Docker
// registry API (distribution spec) for clients holding tokens from the token
// service, checks every request's token against the repository it names,
// and forwards pulls to one upstream registry with the gateway's own
// upstream credential, from the upstream provider of the configuration
// (providers.go: AWS ECR, or any registry with a username and password).
//
// A request's state is one value, routed, allocated with its access record
// and handed down by argument: newHandler → serve → serveV2 (the route
// parsed once and checked, then the token) → the local answer, a cache's,
// or forwarder.forward → finalize (the upstream's answer turned into the
// client's, then the caches filled) → the one write of the upstream's
// answer. Nothing reads request state from the context. The round-trippers
// between forward and the upstream see only the outgoing request they are
// handed. Handlers return errors; newHandler writes each as a registry
// JSON error, and the access record logs it on the request's one line.
//
// The pieces, one file each: config (YAML, validated; provider sections
// decoded by their packages), providers (the table of upstream providers),
// route (the pure path parser), serve (the handler, dispatch and the
// request's state), authz (token check and Bearer challenge), proxy (the
// forwarder and the response rewriting), transport (net/http's Transport
// for the upstream, and the round-trippers around it: the one place the
// upstream credential is set and retried, redirect following, status
// checks, latency), upstreamconn (the guard that keeps a kept-alive
// upstream connection from the next request until net/http has looked at
// it idle), credentials (the credential as the round-trippers hold it),
// manifestcache (the bounded LRU of upstream manifests that answers
// repeated pulls, after the token check), blobredirect (the reuse of the
// upstream's blob redirects while the provider says they stay valid),
// catalog (the gateway-side /v2/_catalog), tokenproxy (/token forwarding),
// usage (the event of each pull, check and denial, queued without waiting
// and sent in batches to the token service's usage intake), metrics, and
// gateway (New's build steps, Run, Close). Nothing here
// imports the AWS SDK: pkg/ecr owns it.
package gateway
