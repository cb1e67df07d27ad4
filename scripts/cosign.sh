#!/usr/bin/env bash
# Prints the path of the cosign CLI built from source at a pinned version,
# building it first when it is not cached (scripts/gotool.sh; about four
# minutes on 2 cores, once). `-path`: where it is or would be, without
# building it. The real-client tests (test/clients) verify signatures with it.
set -euo pipefail
COSIGN_VERSION="${COSIGN_VERSION:-v2.6.5}"
exec "$(dirname "$0")/gotool.sh" cosign github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" "$@"
