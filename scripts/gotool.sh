#!/usr/bin/env bash
# Prints the path of a Go command built at a pinned version, building it
# first when it is not cached:
#
#   scripts/gotool.sh NAME PACKAGE VERSION          # builds if missing, prints the path
#   scripts/gotool.sh NAME PACKAGE VERSION -path    # the path only, without building
#
# The cache lives outside the clone, keyed by name and version
# (${XDG_CACHE_HOME:-$HOME/.cache}/registry-gateway/NAME-VERSION), so CI
# machines and developers build a tool once (minutes on 2 cores) and every
# later run is instant. The tool never enters the product's go.mod; only the
# Go module proxy is needed.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 NAME PACKAGE VERSION [-path]" >&2
  exit 2
fi
name="$1" pkg="$2" version="$3"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/registry-gateway/${name}-${version}"
bin="$cache/$name"

if [ "${4:-}" = "-path" ]; then
  echo "$bin"
  exit 0
fi

if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo "building $name ${version} into $cache (once; cached afterwards)" >&2
  # A temporary GOBIN and a rename so that an interrupted build never leaves
  # a half-written binary at the cached path.
  tmp="$(mktemp -d "$cache/build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "${pkg}@${version}" >&2
  mv "$tmp/$name" "$bin"
fi
echo "$bin"
