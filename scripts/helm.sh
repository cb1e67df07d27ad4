#!/usr/bin/env bash
# Prints the path of the helm CLI built from source at a pinned version,
# building it first when it is not cached (scripts/gotool.sh; a few minutes
# on 2 cores, once). `-path`: where it is or would be, without building it.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
exec "$(dirname "$0")/gotool.sh" helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" "$@"
