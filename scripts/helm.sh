#!/usr/bin/env bash
# Prints the path of a helm CLI built from source at a pinned version, building
# it first when it is not cached. The cache lives outside the clone, keyed by
# version, so CI machines and developers build it once (a few minutes on 2
# cores) and every later run is instant. Only the Go module proxy is needed.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/registry-gateway/helm-${HELM_VERSION}"
bin="$cache/helm"

if [ "${1:-}" = "-path" ]; then
  # Where the binary is or would be, without building it.
  echo "$bin"
  exit 0
fi

if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo "building helm ${HELM_VERSION} into $cache (once; cached afterwards)" >&2
  # A temporary GOBIN and a rename so that an interrupted build never leaves
  # a half-written binary at the cached path.
  tmp="$(mktemp -d "$cache/build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
  mv "$tmp/helm" "$bin"
fi
echo "$bin"
