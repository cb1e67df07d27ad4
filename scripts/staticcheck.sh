#!/usr/bin/env bash
# Prints the path of staticcheck (honnef.co/go/tools) at a pinned version
# that supports the module's Go, building it first when it is not cached
# (scripts/gotool.sh; about a minute on 2 cores, once). `make lint` runs it.
set -euo pipefail
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
exec "$(dirname "$0")/gotool.sh" staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION" "$@"
