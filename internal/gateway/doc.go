// Package gateway is the read-only registry gateway: it answers the Docker
// registry API (distribution spec) for clients holding tokens from the token
// service, checks every request's token against the repository it names,
// and forwards pulls to one upstream registry (AWS ECR or any registry with
// a username and password) with the gateway's own upstream credential.
//
// A request is parsed once: serve turns its path into a checked Route
// (ParseRoute, then Route.ForUpstream for the repository prefix) and puts
// it on the request's access record (httpx.Record), which rides on the
// request's context. Everything downstream reads that route and never the
// path again: the proxy's rewrite, the round-trippers, the rewriting of the
// upstream's answer, the manifest cache, the metrics and the access line.
// Handlers return errors; the shared httpx middleware turns them into
// registry JSON errors and one log line a request.
//
// The pieces, one file each: config (YAML, validated), route (the pure path
// parser), serve (dispatch, the route on the request, the middleware),
// authz (token check and Bearer challenge), proxy (the forwarder and the
// response rewriting), transport (net/http's Transport for the upstream,
// and the round-trippers around it: the one place the upstream credential
// is set and retried, redirect following, status checks, latency),
// upstreamconn (the guard that keeps a kept-alive upstream connection from
// the next request until net/http has looked at it idle), credentials (the upstream credential sources), manifestcache
// (the bounded LRU of upstream manifests that answers repeated pulls, after
// the token check), catalog (the gateway-side /v2/_catalog), tokenproxy
// (/token forwarding), metrics, and gateway (New's build steps, Run,
// Close). Nothing here imports the AWS SDK: pkg/ecr owns it.
package gateway
