#!/usr/bin/env bash
# Prints the path of the oras CLI built from source at a pinned version,
# building it first when it is not cached (scripts/gotool.sh; seconds, once).
# `-path`: where it is or would be, without building it. The real-client
# tests (test/clients) attach, discover and pull artifacts with it.
set -euo pipefail
ORAS_VERSION="${ORAS_VERSION:-v1.3.6}"
exec "$(dirname "$0")/gotool.sh" oras oras.land/oras/cmd/oras "$ORAS_VERSION" "$@"
