// Package gateway is the read-only registry gateway: it answers the Docker
// registry API (distribution spec) for clients holding tokens from the token
// service, checks every request's token against the repository it names,
// and forwards pulls to one upstream registry (AWS ECR or any registry with
// a username and password) with the gateway's own upstream credential.
//
// The pieces, one file each: config (YAML, validated), route (the pure path
// parser), authz (token check and Bearer challenge), proxy (ReverseProxy and
// the response rewriting), transport (the upstream round-trippers:
// credential retry, redirect following, latency), credentials (the upstream
// credential sources), manifestcache (the bounded LRU of upstream
// manifests that answers repeated pulls, after the token check), catalog
// (the gateway-side /v2/_catalog), tokenproxy (/token forwarding), metrics,
// and gateway (wiring and dispatch).
package gateway
