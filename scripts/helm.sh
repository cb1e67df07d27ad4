#!/usr/bin/env bash
# Prints the path of the helm CLI built from source at a pinned version,
# building it first when it is not cached (scripts/gotool.sh; a few minutes
# on 2 cores, once). `-path`: where it is or would be, without building it.
#
# No ldflags are needed for a current default cluster version: helm v4
# takes it from the k8s.io/client-go version in the binary's build info
# (Kubernetes 1.37 for v4.3.2), which `go install` records, so `helm
# template` and `helm lint` satisfy the chart's kubeVersion without
# --kube-version (helm v3 defaulted to 1.20 unless its release ldflags set
# it). Only `helm version` differs from a release build: "v4.3".
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
exec "$(dirname "$0")/gotool.sh" helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" "$@"
